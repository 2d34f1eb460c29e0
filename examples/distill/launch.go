package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/onestepvideo/osv-go/torch"
)

// rankCommand makes the command that runs one rank with args; tests
// replace it to run the test binary instead.
var rankCommand = func(args []string) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(self, args...), nil
}

// launch runs the command as nproc local ranks of one world (the launcher
// environment: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT on
// a free loopback port), passes SIGINT/SIGTERM on as SIGTERM, and waits
// for all of them. A rank that fails makes the launcher stop the others;
// the error names the first rank that failed.
func launch(ctx context.Context, nproc int, args []string, stderr io.Writer) error {
	port, err := torch.FreePort()
	if err != nil {
		return fmt.Errorf("-nproc: %w", err)
	}
	cmds := make([]*exec.Cmd, nproc)
	for r := range nproc {
		cmd, err := rankCommand(args)
		if err != nil {
			return err
		}
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, "RANK="+strconv.Itoa(r), "LOCAL_RANK="+strconv.Itoa(r),
			"WORLD_SIZE="+strconv.Itoa(nproc), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Stdout, cmd.Stderr = stderr, stderr
		cmds[r] = cmd
	}
	started := 0
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			break
		}
		started++
	}
	stop := func() {
		for _, cmd := range cmds[:started] {
			if cmd.Process != nil {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		}
	}
	if started < nproc {
		stop()
		for _, cmd := range cmds[:started] {
			cmd.Wait()
		}
		return fmt.Errorf("-nproc: could not start rank %d", started)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-done:
		}
	}()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for r, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Wait(); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("rank %d of %d: %w", r, nproc, err)
					stop() // the others would wait for it until their timeout
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(done)
	if first != nil && ctx.Err() != nil {
		return errors.Join(ctx.Err(), first)
	}
	return first
}
