"""lossarena: which image-quality metric should a learned codec be trained with, judged by humans?"""

__version__ = "0.1.0"
