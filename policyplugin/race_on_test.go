//go:build race

package policyplugin

const raceEnabled = true
