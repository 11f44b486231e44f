"""cyz: monitor Chinese government and news sites for Chengdu–Chongqing–Zunyi cooperation."""

__version__ = "0.1.0"
