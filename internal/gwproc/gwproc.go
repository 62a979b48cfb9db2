// Package gwproc runs a Tumbler gateway in a child process, for tests and
// benchmarks that must kill it (crash tests) or measure its CPU on its own.
// The child is the test binary itself, re-executed: the test's TestMain
// calls MaybeChild first.
package gwproc

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
	"syscall"
	"time"

	"github.com/tumbler-iot/tumbler/gateway"
)

const (
	envConfig  = "TUMBLER_GWPROC_CONFIG"
	envSecure  = "TUMBLER_GWPROC_COAPS"
	envPlain   = "TUMBLER_GWPROC_COAP"
	envProfile = "TUMBLER_GWPROC_PROFILE"
)

// MaybeChild runs the gateway and exits if this process was started by
// Start; otherwise it returns. Call it first in TestMain.
func MaybeChild() {
	cfg := os.Getenv(envConfig)
	if cfg == "" {
		return
	}
	if err := runChild(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child gateway:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runChild serves the gateway on the given (or ephemeral) loopback ports,
// prints "READY coaps coap", and exits when stdin closes.
func runChild(cfgPath string) error {
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
	secure, err := net.ListenPacket("udp", addrOr(os.Getenv(envSecure)))
	if err != nil {
		return err
	}
	plain, err := net.ListenPacket("udp", addrOr(os.Getenv(envPlain)))
	if err != nil {
		return err
	}
	go gw.ServeDTLS(ctx, secure)
	go gw.ServeCoAP(ctx, plain)
	go gw.RunServices(ctx)
	if path := os.Getenv(envProfile); path != "" {
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

func addrOr(a string) string {
	if a == "" {
		return "127.0.0.1:0"
	}
	return a
}

// Child is a gateway process.
type Child struct {
	cmd         *exec.Cmd
	stdin       interface{ Close() error }
	CoAPS, CoAP *net.UDPAddr
}

// Options for Start.
type Options struct {
	// CoAPS and CoAP fix the ports (a restarted gateway keeps its
	// addresses); nil picks ephemeral ones.
	CoAPS, CoAP *net.UDPAddr
	// Profile writes the child's CPU profile to this file.
	Profile string
}

// Start runs the gateway of cfgPath in a child process and waits until it
// serves.
func Start(cfgPath string, o Options) (*Child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envConfig+"="+cfgPath)
	if o.CoAPS != nil {
		cmd.Env = append(cmd.Env, envSecure+"="+o.CoAPS.String(), envPlain+"="+o.CoAP.String())
	}
	if o.Profile != "" {
		cmd.Env = append(cmd.Env, envProfile+"="+o.Profile)
	}
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
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("gwproc: child did not start")
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "READY" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("gwproc: child said %q", line)
	}
	c := &Child{cmd: cmd, stdin: in}
	if c.CoAPS, err = net.ResolveUDPAddr("udp", f[1]); err != nil {
		return nil, err
	}
	if c.CoAP, err = net.ResolveUDPAddr("udp", f[2]); err != nil {
		return nil, err
	}
	return c, nil
}

// Stop ends the child gracefully (killing it after 10 s).
func (c *Child) Stop() {
	c.stdin.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// Kill sends SIGKILL: the gateway gets no chance to flush or close.
func (c *Child) Kill() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	c.cmd.Wait()
	return nil
}

// CPU returns the child's user+system CPU time so far.
func (c *Child) CPU() (time.Duration, error) { return ProcCPU(c.cmd.Process.Pid) }

// clockTick is USER_HZ, 100 on every Linux architecture Go supports.
const clockTick = 100

// ProcCPU returns a process's user+system CPU time from /proc/PID/stat.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("gwproc: short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("gwproc: bad /proc stat")
	}
	return time.Duration(u+k) * time.Second / clockTick, nil
}
