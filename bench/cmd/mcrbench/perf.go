package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// perfRecorder is `perf record` attached to a server for the length of one
// push (--perf DIR): kernel and user stacks, so the system time that
// /proc/<pid>/stat shows can be attributed (page cache, TLS, hashing).
type perfRecorder struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when perf has exited; err is then set
	err    error
	log    *os.File
	ctl    *os.File // kept open: perf stops at EOF on its control fd
}

// startPerf attaches perf to p and returns once sampling is enabled: perf
// starts with its events disabled (-D -1) and acknowledges "enable" on its
// control pipe, so the profile covers exactly the measured region.
func startPerf(ctx context.Context, p *process, out string) (*perfRecorder, error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		closeAll(ctlR, ctlW)
		return nil, err
	}
	// The child's ends are closed once it has them (or failed to start).
	defer closeAll(ctlR, ackW)
	logf, err := os.Create(out + ".log")
	if err != nil {
		closeAll(ctlW, ackR)
		return nil, err
	}
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-g",
		"-p", strconv.Itoa(p.cmd.Process.Pid), "-o", out, "-D", "-1", "--control", "fd:3,4")
	cmd.ExtraFiles = []*os.File{ctlR, ackW}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		closeAll(logf, ctlW, ackR)
		return nil, fmt.Errorf("perf record: %w", err)
	}
	r := &perfRecorder{cmd: cmd, exited: make(chan struct{}), log: logf, ctl: ctlW}
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	acked := make(chan error, 1)
	go func() {
		defer closeAll(ackR)
		line, err := bufio.NewReader(ackR).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ack" {
			err = fmt.Errorf("perf control answered %q", line)
		}
		acked <- err
	}()
	_, err = ctlW.WriteString("enable\n")
	if err == nil {
		select {
		case err = <-acked:
		case <-r.exited:
			err = fmt.Errorf("perf record exited before sampling (see %s.log): %w", out, r.err)
		case <-time.After(20 * time.Second):
			err = fmt.Errorf("perf record did not acknowledge enable (see %s.log)", out)
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		r.stop()
		return nil, err
	}
	return r, nil
}

// closeAll closes pipe ends and files of the recorder; their close errors
// carry nothing (perf's output file is perf's to write).
func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}

// stop ends sampling (SIGINT makes perf write its file) and returns a note
// for the log: empty on success.
func (r *perfRecorder) stop() string {
	defer closeAll(r.log, r.ctl)
	_ = r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.exited:
		// perf re-raises the SIGINT after writing its file.
		var ee *exec.ExitError
		if r.err != nil && (!errors.As(r.err, &ee) || !killedBy(ee, syscall.SIGINT)) {
			return "perf: " + r.err.Error()
		}
	case <-time.After(60 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
		return "perf: killed after 60 s"
	}
	return ""
}

func killedBy(ee *exec.ExitError, sig syscall.Signal) bool {
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}
