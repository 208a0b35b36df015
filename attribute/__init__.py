"""Attribution stage: georeferenced explanations of the U-Net's solar masks."""
