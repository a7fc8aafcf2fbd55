package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/sirupsen/logrus"

	"git.wntrmute.dev/kyle/mcr/config"
)

// loadConfig loads the configuration of an operator command and sets up
// logging from it.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	setupLogging(cfg.Log.SlogLevel())
	return cfg, nil
}

// setupLogging installs a text slog handler on stderr at level and routes
// distribution's logrus output into it, so the process has one log stream
// with one level setting.
func setupLogging(lv slog.Level) {
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv})
	slog.SetDefault(slog.New(h))
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrusLevel(lv))
	logrus.StandardLogger().ReplaceHooks(logrus.LevelHooks{})
	logrus.AddHook(&slogHook{logger: slog.Default()})
}

// logrusLevel is the level distribution logs at. Its info entries (two per
// request: "authorized request", "response completed") are forwarded at
// debug (slogHook), so below debug logrus starts at warn: an entry that
// would be dropped is then never formatted (formatting the discarded
// entries was 5 % of a manifest GET's CPU).
func logrusLevel(l slog.Level) logrus.Level {
	switch {
	case l <= slog.LevelDebug:
		return logrus.DebugLevel
	case l <= slog.LevelWarn:
		return logrus.WarnLevel
	}
	return logrus.ErrorLevel
}

// slogHook forwards logrus entries to slog. Request fields whose names hint
// at credentials are dropped: tokens never reach the log.
type slogHook struct{ logger *slog.Logger }

func (h *slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *slogHook) Fire(e *logrus.Entry) error {
	var lv slog.Level
	switch e.Level {
	case logrus.TraceLevel, logrus.DebugLevel:
		lv = slog.LevelDebug
	case logrus.InfoLevel:
		// distribution logs every request at info ("response completed",
		// "authorized request"); keep them at debug so info stays readable.
		lv = slog.LevelDebug
	case logrus.WarnLevel:
		lv = slog.LevelWarn
	default:
		lv = slog.LevelError
	}
	// Client errors (404 probes, 401 challenges) are routine for a registry.
	if status, ok := e.Data["http.response.status"].(int); ok && status < 500 && lv > slog.LevelDebug {
		lv = slog.LevelDebug
	}
	if e.Message == "error authorizing context: authentication required" {
		lv = slog.LevelDebug
	}
	if !h.logger.Enabled(context.Background(), lv) {
		return nil
	}
	attrs := make([]slog.Attr, 0, len(e.Data)+1)
	attrs = append(attrs, slog.String("component", "distribution"))
	for k, v := range e.Data {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "authorization") || strings.Contains(lk, "token") || strings.Contains(lk, "password") || strings.Contains(lk, "secret") {
			continue
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	h.logger.LogAttrs(context.Background(), lv, e.Message, attrs...)
	return nil
}
