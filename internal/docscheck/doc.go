// Package docscheck keeps the documentation from drifting away from the code.
// It holds tests only (docs_test.go): they read README.md and docs/*.md and
// fail, naming the file and line, when a cited test, file path, package,
// program flag or Go identifier of this module does not exist, when a
// relative link or its anchor leads nowhere, when a quoted Go snippet is no
// longer in the file it names, when the README's sample output is no
// longer what the programs' Example tests check, or when a go install
// names another version than go.mod's. The other way round, every flag a
// program defines must be cited in its page, docs/<program>.md.
//
//	go test ./internal/docscheck
package docscheck
