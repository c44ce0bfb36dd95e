"""The floor every wing stands on: safe image I/O, the working-folder state, parallel maps, Ray."""
