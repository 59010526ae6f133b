package config

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	valid := []struct {
		in   string
		want int64
	}{
		{"123", 123},
		{"0", 0},
		{"123B", 123},
		{"500KB", 500_000},
		{"1GB", 1_000_000_000},
		{"2TB", 2_000_000_000_000},
		{"64MiB", 64 << 20},
		{"10GiB", 10 << 30},
		{"1KiB", 1024},
		{"1TiB", 1 << 40},
		{"1.5GiB", 1610612736},
		{"0.5KiB", 512},
		{"64 MiB", 64 << 20},
		{" 64mib ", 64 << 20},
		{"1kb", 1000},
		{"007MB", 7_000_000},
		{"8388607TiB", 8388607 << 40},
		{"9223372036854775807", 9223372036854775807},
		{"0000000000000000000000000000000000000001", 1},
	}
	for _, tc := range valid {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	invalid := []string{
		"", " ", "MiB", "-1", "-64MiB", "+1", "1.5B", "0.1KiB", "1.", ".5KiB", "1.2.3MB",
		"10 gigabytes", "1K", "1M", "1G", "1e3", "1/2", "0x10", "8388608TiB",
		"9223372036854775808", "1,000", "12 34", "NaN", "Inf",
		"00000000000000000000000000000000000000001B", // too many digits
	}
	for _, in := range invalid {
		if got, err := ParseSize(in); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("ParseSize(%q) = %d, %v; want ErrInvalidSize", in, got, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for in, want := range map[int64]string{1: "1B", 1024: "1KiB", 64 << 10: "64KiB", 512 << 20: "512MiB", 4 << 30: "4GiB", 1 << 40: "1TiB", 1500: "1500B"} {
		if got := formatSize(in); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", in, got, want)
		}
	}
}
