"""User-facing errors. The CLI turns any of these into a one-line message and exit code 2."""


class HPTransferError(Exception):
    """Base class: a problem the user can fix (bad input, missing file, unavailable backend)."""


class ConfigError(HPTransferError, ValueError):
    """An invalid model, training, sweep or target specification."""


class DataError(HPTransferError):
    """A missing, corrupt or unreadable data source."""


class ResultsError(HPTransferError):
    """Missing, corrupt or inconsistent results under results/."""


class BackendUnavailableError(HPTransferError):
    """An optional backend (Triton, a GPU, a Ray cluster) was requested but cannot be used."""


class TrainingDiverged(HPTransferError):
    """A run's loss became NaN/inf or blew up; carries the step and the loss reached."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"training diverged at step {step} (loss {loss})")
        self.step = step
        self.loss = loss
