from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from log_names_lm import LogNames, dataset


class LogNamesTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        super().__init__(context, lightning_module=LogNames())

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(dataset(12, 0), batch_size=4)

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(dataset(10, 1), batch_size=4)
