mod broken;
mod bundled;
