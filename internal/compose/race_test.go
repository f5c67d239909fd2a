//go:build race

package compose

// budgetSize is the base object of TestBudgetBigObject: the race
// detector makes hashing and copying 256 MiB in memory minutes slow, and
// the budgets do not depend on the size (the mount-level test,
// test/edit_test.go, measures the 256 MiB case against MinIO).
const budgetSize = 64 << 20
