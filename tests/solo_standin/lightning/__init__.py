"""Stand-in of the lightning package: solo-learn pins lightning 2.1.2 (fkt-plugin itself uses
pytorch_lightning); registration reads only its version."""

__version__ = "2.1.2"
