from determined.pytorch import DataLoader, PyTorchTrialContext
from determined.pytorch.lightning import LightningAdapter
from recorder_lm import Recorder, dataset


class RecorderTrial(LightningAdapter):
    def __init__(self, context: PyTorchTrialContext) -> None:
        super().__init__(context, lightning_module=Recorder())

    def build_training_data_loader(self) -> DataLoader:
        return DataLoader(dataset(12, 0), batch_size=4)

    def build_validation_data_loader(self) -> DataLoader:
        return DataLoader(dataset(8, 1), batch_size=4)
