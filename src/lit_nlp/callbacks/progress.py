"""Lightning's rich progress bar, reading its metrics every N steps instead of every step."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar
from rich.progress import BarColumn


class ProgressBar(RichProgressBar):
    """Rich progress bar that shows, of what the modules log with `prog_bar=True`, the latest
    train/loss, `monitor` and val/loss: one line of about 50 characters (all four classification
    metrics took six lines of an 80-column log; TensorBoard has the rest).

    Lightning's rich bar reads its metrics after every training batch, a `.item()` per metric,
    which is a host-device sync on a GPU; this one reads them every `metrics_every_n_steps`
    batches and at the end of each epoch and validation (the bar itself moves every batch).
    Without a terminal (CI logs) rich prints each stage's final bar once, not every redraw."""

    def __init__(self, monitor: str | None = None, metrics_every_n_steps: int = 50, refresh_rate: int = 10,
                 bar_width: int = 40, leave: bool = False, theme=None, console_kwargs: dict | None = None):
        kwargs = {"theme": theme} if theme is not None else {}
        super().__init__(refresh_rate=refresh_rate, leave=leave, console_kwargs=console_kwargs, **kwargs)
        self.monitor = monitor
        self.metrics_every_n_steps = max(1, metrics_every_n_steps)
        self.bar_width = bar_width
        self._reuse_metrics = False
        self._metrics: dict | None = None

    def configure_columns(self, trainer) -> list:
        columns = super().configure_columns(trainer)
        for column in columns:
            if isinstance(column, BarColumn):
                column.bar_width = self.bar_width
        return columns

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._reuse_metrics = (batch_idx + 1) % self.metrics_every_n_steps != 0
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._reuse_metrics = False

    def get_metrics(self, trainer, pl_module) -> dict:
        if self._reuse_metrics and self._metrics is not None:
            return self._metrics
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the TensorBoard version; always "" here (one log per run dir)
        if self.monitor:
            # the modules keep train/loss off the bar (Lightning would read it after every step);
            # it is read here, one sync per metrics_every_n_steps
            loss = trainer.callback_metrics.get("train/loss_step", trainer.callback_metrics.get("train/loss"))
            shown = {"train/loss": float(loss) if loss is not None else None}
            shown.update({k: metrics[k] for k in (self.monitor, "val/loss") if k in metrics})
            metrics = {k: v for k, v in shown.items() if v is not None}
        self._metrics = metrics
        return metrics
