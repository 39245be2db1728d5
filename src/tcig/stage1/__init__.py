"""Stage 1 (control): the optimization loop, its losses, parameterizations (pixel pyramid, VAE latent) and starts."""
