package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tumbler-iot/tumbler/gateway"
)

// envChild makes the test binary run a gateway instead of tests.
const envChild = "TUMBLER_BENCH_GATEWAY"

// envChildProfile, if set, makes the child gateway write a CPU profile
// there: TUMBLER_BENCH_GATEWAY_PROFILE=/tmp/gw.pprof go test -bench ...
const envChildProfile = "TUMBLER_BENCH_GATEWAY_PROFILE"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(envChild); cfg != "" {
		if err := runChildGateway(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "child gateway:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChildGateway serves the gateway of cfgPath on loopback, prints its
// addresses, and exits when stdin closes (the parent died or finished).
func runChildGateway(cfgPath string) error {
	cfg, err := gateway.Load(cfgPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gw, err := gateway.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer gw.Close()
	secure, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	plain, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go gw.ServeDTLS(ctx, secure)
	go gw.ServeCoAP(ctx, plain)
	if path := os.Getenv(envChildProfile); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("READY %s %s\n", secure.LocalAddr(), plain.LocalAddr())
	bufio.NewReader(os.Stdin).ReadString('\n')
	return nil
}

// child is a gateway process.
type child struct {
	cmd         *exec.Cmd
	stdin       interface{ Close() error }
	coaps, coap *net.UDPAddr
}

func startChild(cfgPath string) (*child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+cfgPath)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("child gateway did not start: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "READY" {
		cmd.Process.Kill()
		return nil, fmt.Errorf("child gateway said %q", line)
	}
	c := &child{cmd: cmd, stdin: in}
	if c.coaps, err = net.ResolveUDPAddr("udp", f[1]); err != nil {
		return nil, err
	}
	if c.coap, err = net.ResolveUDPAddr("udp", f[2]); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *child) stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the child's user+system CPU time from /proc/PID/stat.
func (c *child) cpu() (time.Duration, error) {
	return procCPU(c.cmd.Process.Pid)
}

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that ends the command name; utime and stime
	// are fields 14 and 15 of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc stat")
	}
	return time.Duration(u+k) * time.Second / clockTick, nil
}
