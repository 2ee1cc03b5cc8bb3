"""dvclive logging that plots against the trainer's global step and survives a resumed run."""

from __future__ import annotations

from transformers.integrations import DVCLiveCallback


class StepAlignedDVCLiveCallback(DVCLiveCallback):
    """The library's `DVCLiveCallback`, with two changes a resumed `train` stage needs.

    The library counts its own dvclive steps from 0 at every start, so the x axis of `dvc plots` is
    "number of log calls", not the training step. And DVC deletes a stage's plots before it re-runs
    it, so a run resumed from a checkpoint would draw only the steps after the checkpoint. Here each
    log is written at `state.global_step`, and a resumed run first writes back the earlier logs that
    the checkpoint's trainer state keeps (`state.log_history`), so its curves equal an uninterrupted
    run's.
    """

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        if state.is_world_process_zero and state.global_step > 0:
            for entry in state.log_history:
                logs = {key: value for key, value in entry.items() if key != "step"}
                self._log_at(entry["step"], args, state, control, logs)

    def on_log(self, args, state, control, model=None, logs=None, **kwargs):
        logs = dict(logs or {})
        if "train_loss" in logs:  # the end-of-run summary: the whole run's loss, not this call's
            logs["train_loss"] = run_train_loss(state.log_history)
        self._log_at(state.global_step, args, state, control, logs, model=model, **kwargs)

    def _log_at(self, step: int, args, state, control, logs: dict, **kwargs) -> None:
        if not self._initialized:
            self.setup(args, state, kwargs.get("model"))
        if state.is_world_process_zero:
            self.live.step = step
        super().on_log(args, state, control, logs=logs, **kwargs)


def run_train_loss(log_history: list[dict]) -> float | None:
    """Mean of the logged training losses over the whole run, resumed parts included.

    The trainer's own `training_loss` covers only the current `train()` call, so after a resume it
    would describe the second half of the run alone.
    """
    losses = [entry["loss"] for entry in log_history if "loss" in entry]
    return sum(losses) / len(losses) if losses else None
