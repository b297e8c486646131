"""Imports every architecture module so that its ``@register_model`` decorators run."""

from kdrun.models import cnn1d, mlp, text, torchvision_names  # noqa: F401
from kdrun.models.cifar import mobilenetv2, resnet, resnet_bottleneck, shufflenetv1, shufflenetv2, vgg, wrn  # noqa: F401
