"""Raw-data contract, sample generator and benchmark splits."""
