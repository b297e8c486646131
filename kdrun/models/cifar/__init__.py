"""The CIFAR model zoo of the KD benchmark (RepDistiller / CRD, ICLR 2020; mdistiller / DKD, CVPR 2022).

One module per architecture family; each builder is named by its ``kdrun/models/arch/<name>.yaml``. Architectures, parameter counts and state-dict key
names match the reference code, so its published CIFAR-100 teacher checkpoints
(``{'model': state_dict}``) load with ``strict=True``. Input channels, size and class count
come from the dataset, and every model also runs on small inputs such as 8x8 digits.
"""
