// What the tests of package probe_test read of the package's insides.

package probe

// FirstStep is the first pause after a probe (probeFirstStep), for a test
// that shortens it.
var FirstStep = &probeFirstStep
