package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"unicode/utf8"

	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/wasmrouter/wasmrouter/internal/regfile"
)

// maxFileFunctionSize bounds what file() reads, so a config cannot make the loader swallow a
// device or a huge file.
const maxFileFunctionSize = 16 << 20

// functions are the functions available in configuration expressions.
func functions(dir string, lookupEnv func(string) (string, bool)) map[string]function.Function {
	return map[string]function.Function{
		"env":          envFunction(lookupEnv),
		"file":         fileFunction(dir),
		"base64encode": base64EncodeFunction,
		"concat":       stdlib.ConcatFunc,
		"format":       stdlib.FormatFunc,
		"join":         stdlib.JoinFunc,
		"jsondecode":   stdlib.JSONDecodeFunc,
		"jsonencode":   stdlib.JSONEncodeFunc,
		"lower":        stdlib.LowerFunc,
		"merge":        stdlib.MergeFunc,
		"split":        stdlib.SplitFunc,
		"tonumber":     stdlib.MakeToFunc(cty.Number),
		"tostring":     stdlib.MakeToFunc(cty.String),
		"trimspace":    stdlib.TrimSpaceFunc,
		"upper":        stdlib.UpperFunc,
	}
}

// envFunction is env(name, default): the variable's value, else the default, else an error.
// Lookups go through lookupEnv so that tests need not touch the process environment.
func envFunction(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or the default when it is not set.",
		Params:      []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam:    &function.Parameter{Name: "default", Type: cty.String},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, function.NewArgErrorf(2, "env takes a name and at most one default")
			}
			name := args[0].AsString()
			if value, ok := lookupEnv(name); ok {
				return cty.StringVal(value), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %q is not set and no default is given", name)
		},
	})
}

// fileFunction is file(path): the contents of a UTF-8 text file, path relative to dir.
func fileFunction(dir string) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the contents of a text file; a relative path is relative to the configuration file.",
		Params:      []function.Parameter{{Name: "path", Type: cty.String}},
		Type:        function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			text, err := readTextFile(resolvePath(dir, name))
			if err != nil {
				return cty.NilVal, fmt.Errorf("cannot read %q: %w", name, err)
			}
			return cty.StringVal(text), nil
		},
	})
}

// readTextFile reads a regular file of at most maxFileFunctionSize bytes of UTF-8. Errors leave
// out the resolved path: the caller names the file as the user wrote it.
func readTextFile(path string) (string, error) {
	data, err := regfile.Read(path, maxFileFunctionSize)
	if err != nil {
		return "", pathless(err)
	}
	if !utf8.Valid(data) {
		return "", errors.New("not valid UTF-8 text")
	}
	return string(data), nil
}

// pathless strips the path from an *fs.PathError, keeping the cause.
func pathless(err error) error {
	var pathErr *fs.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	return err
}

var base64EncodeFunction = function.New(&function.Spec{
	Description: "Encodes a string in standard base64.",
	Params:      []function.Parameter{{Name: "str", Type: cty.String}},
	Type:        function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.StringVal(base64.StdEncoding.EncodeToString([]byte(args[0].AsString()))), nil
	},
})
