package eras

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// tsLine is one line ts/client.mjs prints.
type tsLine struct {
	Feature    string  `json:"feature"`
	Status     string  `json:"status"`
	Reason     string  `json:"reason"`
	Ready      *bool   `json:"ready"`
	BlockEnded *string `json:"blockEnded"`
	Error      string  `json:"error"`
}

// tsClient runs one cell with the TypeScript SDK v2 client (ts/client.mjs),
// pinned to 2026-07-28. The script runs every feature but cancellation and
// reports; this side checks the headers the upstream received and drives
// the cancellation, which needs to know when the call reached the upstream.
func tsClient(node, sdk2 string) func(t *testing.T, c cell) map[string]outcome {
	return func(t *testing.T, c cell) map[string]outcome {
		tools := c.Up.Tools
		config, err := json.Marshal(map[string]any{
			"url": c.Door.Endpoint, "token": c.Token, "tenant": c.Tenant, "region": c.Region, "echoArgs": echoArgs(c),
			"era": "2026-07-28", "prefix": c.Door.Prefix,
			"tools": map[string]any{
				"echo": tools.Echo, "progress": tools.Progress, "sample": tools.Sample, "elicit": tools.Elicit,
				"addtool": tools.AddTool, "touch": tools.Touch, "block": tools.Block, "watched": tools.Watched,
				"touchesItself": tools.TouchesItself,
			},
			"callTimeoutMs": cellTimeout.Milliseconds(), "notifyWaitMs": notifyWait.Milliseconds(),
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), tsClientTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, node, filepath.Join("ts", "client.mjs"), string(config))
		cmd.Env = append(os.Environ(), EnvTSSDK2+"="+sdk2)
		stderr := &testenv.LogBuffer{}
		cmd.Stderr = stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			return allFail("start the TypeScript client: " + err.Error())
		}
		lines := make(chan tsLine)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var l tsLine
				if json.Unmarshal(sc.Bytes(), &l) == nil {
					select {
					case lines <- l:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		defer func() {
			stdin.Close()
			for range lines { // to the end of its output, then Wait, as os/exec asks
			}
			_ = cmd.Wait()
		}()
		send := func(v any) error {
			b, _ := json.Marshal(v)
			_, err := stdin.Write(append(b, '\n'))
			return err
		}
		died := func() map[string]outcome {
			reason := fmt.Sprintf("the TypeScript client ended early (%v); its stderr: %s", ctx.Err(), stderr.String())
			return allFail(reason)
		}

		out := map[string]outcome{}
		ready := false
		for !ready {
			l, ok := <-lines
			if !ok {
				for f, o := range died() {
					if _, done := out[f]; !done {
						out[f] = o
					}
				}
				return out
			}
			switch {
			case l.Feature != "":
				out[l.Feature] = outcome{l.Status, oneLine(l.Reason)}
			case l.Ready != nil:
				ready = true
				if !*l.Ready { // it could not connect and said so for every feature
					return out
				}
			}
		}
		if out["call"].Status == "pass" {
			out["call"] = checkHop(c, tools.Echo)
		}
		out["cancellation"] = checkCancellation(c, func(ctx context.Context, region string) error {
			if err := send(map[string]string{"cmd": "block", "region": region}); err != nil {
				return err
			}
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						return errors.New("the TypeScript client ended")
					}
					if l.BlockEnded != nil && *l.BlockEnded == region {
						if l.Error != "" {
							return errors.New(l.Error)
						}
						return nil
					}
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}, func() error { return send(map[string]string{"cmd": "cancel"}) })
		_ = send(map[string]string{"cmd": "end"})
		return out
	}
}
