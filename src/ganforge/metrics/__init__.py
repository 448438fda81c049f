"""How good is a generator? `features` turns images into vectors, `stats` measures distances
between two sets of them, and `classes` checks which classes of a labelled dataset samples cover."""
