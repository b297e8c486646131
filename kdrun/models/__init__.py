"""Architectures: the registry, the CIFAR zoo, small models for small data."""

from kdrun.models.base import KDModel
from kdrun.models.features import FeatureInfo, Features
from kdrun.models.registry import create_model, list_models, model_spec, register_model

__all__ = ["KDModel", "FeatureInfo", "Features", "create_model", "list_models", "model_spec", "register_model"]
