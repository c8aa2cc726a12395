mod broken;
mod bundled;
mod hostile;
