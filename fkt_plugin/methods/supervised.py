"""The supervised baseline: cross-entropy on the labelled images only, same backbone."""

from __future__ import annotations

from typing import ClassVar

from fkt_plugin.methods.base import BaseMethod
from fkt_plugin.methods.registry import METHODS


@METHODS.register("supervised")
class Supervised(BaseMethod):
    """Backbone + linear classifier trained by cross-entropy; unlabelled images are not served.

    method_kwargs:
        supervised_view (int): Index of the view the classifier trains on. Defaults to 0.
    """

    ssl_views: ClassVar[int] = 0
    supervised_grad: ClassVar[bool] = True
    uses_unlabelled: ClassVar[bool] = False
