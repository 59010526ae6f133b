package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/wasmrouter/wasmrouter/internal/config"
)

// The change the demo makes: orders of 10 and more reach analytics, not only those of 100.
const (
	thresholdBefore = `config = { field = "amount", min = "100" }`
	thresholdAfter  = `config = { field = "amount", min = "10" }`
)

// reloadAnswer is what POST /api/v1/reload answers (docs/reload.md).
type reloadAnswer struct {
	Generation int  `json:"generation"`
	Applied    bool `json:"applied"`
	Changes    []struct {
		Op, Kind, Name, Detail string
	} `json:"changes"`
	WhatIf *struct {
		Events uint64 `json:"events"`
		Diff   *struct {
			NewlyRouted    uint64 `json:"newly_routed"`
			NoLongerRouted uint64 `json:"no_longer_routed"`
			OutputChanged  uint64 `json:"output_changed"`
		} `json:"diff"`
	} `json:"what_if"`
	Diagnostics []string `json:"diagnostics"`
}

// reloadDemo edits the configuration file, reloads the running router (a dry run first),
// shows the samples going through the new generation, and puts the file back.
func reloadDemo(ch *amqp.Channel, cfg *config.Config, path string, queues map[string]string, wait time.Duration) error {
	original, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Contains(original, []byte(thresholdBefore)) {
		fmt.Printf("\n(%s has no high_value threshold of 100: the reload part is skipped)\n", path)
		return nil
	}
	// The file is put back however the demo ends, an interrupt included.
	restore := func() error { return writeAtomically(path, original) }
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt)
	defer signal.Stop(interrupted)
	go func() {
		if _, ok := <-interrupted; ok {
			_ = restore()
			os.Exit(1)
		}
	}()
	defer func() { _ = restore() }()

	fmt.Printf("\n== changing the running router: high_value keeps orders of 10 and more (it was 100)\n")
	if err := writeAtomically(path, bytes.Replace(original, []byte(thresholdBefore), []byte(thresholdAfter), 1)); err != nil {
		return err
	}
	ans, err := postReload(cfg, `{"dry_run": true, "history": "1h"}`)
	if err != nil {
		return err
	}
	printAnswer("dry run", ans)
	if ans.WhatIf != nil && ans.WhatIf.Diff != nil {
		fmt.Printf("  over the last hour of the log (%d events), (event, route) decisions: %d newly routed, %d no longer routed, %d with another output\n",
			ans.WhatIf.Events, ans.WhatIf.Diff.NewlyRouted, ans.WhatIf.Diff.NoLongerRouted, ans.WhatIf.Diff.OutputChanged)
	}
	if ans, err = postReload(cfg, `{}`); err != nil {
		return err
	}
	printAnswer("reload", ans)

	fmt.Printf("\n== the same samples through generation %d (order o-2, amount 20, now reaches analytics)\n", ans.Generation)
	if err := publishSamples(ch, cfg.Sources[0].Exchange); err != nil {
		return err
	}
	if err := showTargets(ch, cfg, queues, wait); err != nil {
		return err
	}

	fmt.Printf("\n== putting %s back as it was\n", path)
	if err := restore(); err != nil {
		return err
	}
	if ans, err = postReload(cfg, `{}`); err != nil {
		return err
	}
	printAnswer("reload", ans)
	return nil
}

func printAnswer(what string, ans reloadAnswer) {
	for _, c := range ans.Changes {
		line := c.Op + " " + c.Kind
		if c.Name != "" {
			line += fmt.Sprintf(" %q", c.Name)
		}
		if c.Detail != "" {
			line += ": " + c.Detail
		}
		fmt.Printf("  %s\n", line)
	}
	if ans.Applied {
		fmt.Printf("  %s: generation %d in force\n", what, ans.Generation)
	} else {
		fmt.Printf("  %s: would apply generation %d\n", what, ans.Generation)
	}
}

// postReload asks the running router to reload (POST /api/v1/reload, docs/reload.md).
func postReload(cfg *config.Config, body string) (reloadAnswer, error) {
	var ans reloadAnswer
	req, err := http.NewRequest(http.MethodPost, "http://"+cfg.Router.AdminAddr+"/api/v1/reload", strings.NewReader(body))
	if err != nil {
		return ans, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.Router.AdminToken != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.Router.AdminToken)
	}
	client := &http.Client{Timeout: time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return ans, fmt.Errorf("is the router running (`make run`)? %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ans); err != nil {
		return ans, fmt.Errorf("reload answered %s: %w", resp.Status, err)
	}
	if len(ans.Diagnostics) > 0 {
		return ans, errors.New("reload refused:\n" + strings.Join(ans.Diagnostics, "\n"))
	}
	if resp.StatusCode != http.StatusOK {
		return ans, fmt.Errorf("reload answered %s", resp.Status)
	}
	return ans, nil
}

// writeAtomically replaces path whole, as an editor saving it does.
func writeAtomically(path string, data []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp := path + ".demo-tmp"
	if err := os.WriteFile(tmp, data, info.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
