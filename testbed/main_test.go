package testbed

import (
	"os"
	"testing"

	"github.com/tumbler-iot/tumbler/internal/gwproc"
)

func TestMain(m *testing.M) {
	gwproc.MaybeChild()
	os.Exit(m.Run())
}
