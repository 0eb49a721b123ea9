"""Pure data: manifest kinds, observed state and plans. No I/O lives here."""
