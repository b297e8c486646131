"""Imports every architecture module so that its ``@register_model`` decorators run."""

from kdrun.models import cnn1d, mlp  # noqa: F401
