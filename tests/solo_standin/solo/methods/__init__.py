"""Stand-in of solo.methods: the registry solo-learn's scripts look methods up in."""

from solo.methods.base import BaseMethod

METHODS = {"simclr": BaseMethod}
