"""The UNet loops the inversion methods run: DDIM steps, DDIM inversion, null-text optimisation, and the
graphed UNet passes that serve them."""
