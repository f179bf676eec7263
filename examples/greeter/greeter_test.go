package greeter_test

import (
	"os"
	"strings"
	"testing"

	"github.com/coppice-kv/coppice/actors"
	"github.com/coppice-kv/coppice/examples/greeter"
	"github.com/coppice-kv/coppice/supervisor"
	"github.com/coppice-kv/coppice/supervisor/actorscript"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestScripts runs the greeter's script against the node's real tree.
func TestScripts(t *testing.T) {
	tree := actors.Tree(actors.Config{User: []supervisor.ChildSpec{greeter.Spec()}})
	testscript.Run(t, actorscript.Params("testdata", actorscript.StandardKinds(), actorscript.Tree{Name: "node", Spec: tree}))
}

// TestREADMEShowsTheExample keeps the README's example the code that is
// compiled and run here.
func TestREADMEShowsTheExample(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"greeter.go", "testdata/greeter.txtar"} {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The README leaves out the package comment.
		code := string(body)
		if i := strings.Index(code, "package greeter"); i > 0 {
			code = code[i:]
		}
		if !strings.Contains(string(readme), code) {
			t.Errorf("README.md does not contain %s as it is; copy it in again", f)
		}
	}
}
