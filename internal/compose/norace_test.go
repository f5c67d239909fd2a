//go:build !race

package compose

// budgetSize is the base object of TestBudgetBigObject (see race_test.go).
const budgetSize = 256 << 20
