package supervisor_test

import (
	"testing"

	"github.com/coppice-kv/coppice/supervisor/actorscript"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs every testdata/*.txtar: one OTP semantic a script.
func TestScripts(t *testing.T) {
	testscript.Run(t, actorscript.Params("testdata", actorscript.StandardKinds()))
}
