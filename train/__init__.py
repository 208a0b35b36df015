"""Model stage: datasets over the chip index, U-Net training and evaluation."""
