"""Bottom layer: errors, console, process set-up, devices, image I/O, checkpoints, weights, options, plots."""
