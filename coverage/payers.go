package coverage

// Served reports whether any of have (a coverage's payer identifiers) is
// in want (the payers an instance serves; an empty System matches any).
func Served(have, want []PayerID) bool { return anyPayer(have, want) }
