"""Results and their files: what the editor returns, images, masks, grids and sidecars, output sets written
all or nothing, and the versions a result records."""
