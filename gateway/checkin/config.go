package checkin

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Class is a device class's check-in schedule.
type Class struct {
	// Interval between check-ins (default one week).
	Interval time.Duration `yaml:"interval"`
	// Grace after the due time before a check-in counts as missed.
	Grace time.Duration `yaml:"grace"`
	// SerialPrefix assigns devices whose serial number starts with it to
	// this class (the longest matching prefix wins; "default" matches all).
	SerialPrefix string `yaml:"serial_prefix"`
}

// Config is the check-in section of gateway.yaml.
type Config struct {
	// Classes by name; "default" is always present.
	Classes map[string]Class `yaml:"classes"`
	// Poll is how often the overdue tracker looks for missed check-ins.
	Poll time.Duration `yaml:"poll"`
	// MaxContexts bounds the OSCORE contexts kept in memory (the rest are
	// loaded from the store on demand).
	MaxContexts int `yaml:"max_contexts"`
}

// DefaultClass is the schedule of devices no other class claims.
var DefaultClass = Class{Interval: 7 * 24 * time.Hour, Grace: 24 * time.Hour}

// Defaults returns the default configuration.
func Defaults() Config {
	return Config{Classes: map[string]Class{"default": DefaultClass}, Poll: time.Minute, MaxContexts: 65536}
}

// Validate names the first bad field (prefixed "checkin.").
func (c Config) Validate() error {
	if _, ok := c.Classes["default"]; !ok {
		return fmt.Errorf("%w: checkin.classes: a \"default\" class is required", ErrConfig)
	}
	for _, name := range c.names() {
		cl := c.Classes[name]
		if cl.Interval < time.Second {
			return fmt.Errorf("%w: checkin.classes.%s.interval: %v is shorter than a second", ErrConfig, name, cl.Interval)
		}
		if cl.Grace < 0 {
			return fmt.Errorf("%w: checkin.classes.%s.grace: negative", ErrConfig, name)
		}
		if name != "default" && cl.SerialPrefix == "" {
			return fmt.Errorf("%w: checkin.classes.%s.serial_prefix: required for a class other than default", ErrConfig, name)
		}
	}
	if c.Poll <= 0 {
		return fmt.Errorf("%w: checkin.poll: must be positive", ErrConfig)
	}
	if c.MaxContexts < 1 {
		return fmt.Errorf("%w: checkin.max_contexts: must be positive", ErrConfig)
	}
	return nil
}

func (c Config) names() []string {
	n := make([]string, 0, len(c.Classes))
	for k := range c.Classes {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// classOf picks the class of a serial number: longest prefix match.
func (c Config) classOf(serial string) (string, Class) {
	best, name := -1, "default"
	for _, n := range c.names() {
		cl := c.Classes[n]
		if n != "default" && strings.HasPrefix(serial, cl.SerialPrefix) && len(cl.SerialPrefix) > best {
			best, name = len(cl.SerialPrefix), n
		}
	}
	return name, c.Classes[name]
}

// class returns a class by name, falling back to default.
func (c Config) class(name string) Class {
	if cl, ok := c.Classes[name]; ok {
		return cl
	}
	return c.Classes["default"]
}
