// The drift test: every test, path, package, flag, identifier, link, quoted
// snippet and sample output that README.md and docs/*.md cite is looked up
// in the module's own source.

package docscheck

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// kind is what a citation names.
type kind string

const (
	kindTest     kind = "test"       // TestXxx, BenchmarkXxx, FuzzXxx, ExampleXxx (the name before any /subtest)
	kindPath     kind = "path"       // a file or directory of the module
	kindPackage  kind = "package"    // ./dir in a go command, or alone in backquotes
	kindFlag     kind = "flag"       // -name given to a program
	kindTestFlag kind = "test flag"  // -name after the package of a go test command
	kindIdent    kind = "identifier" // pkg.Name or pkg.Type.Member of the module's own packages
	kindLink     kind = "link"       // a relative Markdown link, with its #anchor
	kindQuote    kind = "quote"      // a Go snippet that says which file it is quoted from
	kindOutput   kind = "output"     // a line of the README's sample output
	kindVersion  kind = "version"    // the version in go install module@version, for a module go.mod requires
)

// citation is one thing a Markdown file cites, at one line.
type citation struct {
	kind kind
	file string // the Markdown file, slash-separated, relative to the module root
	line int
	text string // the name, path, flag (without its dash), link target or output line
	// in is where the citation must hold: the program (flags, outputs), the
	// package directory (test flags), the package name (identifiers), the
	// directory a bare file name is in, or the file a quote is from.
	in string
	// loose, for a flag, also accepts the program's test flags and go
	// test's own: a flag written alone in a program's page may be either.
	loose bool
	body  []string // kindQuote: the quoted lines, from line+1 on
}

func (c citation) String() string {
	return fmt.Sprintf("%s:%d: %s %q", c.file, c.line, c.kind, c.text)
}

// pkg is what the drift test knows of one package directory.
type pkg struct {
	dir       string          // slash-separated, relative to the module root
	idents    map[string]bool // top-level names, and Type.Method and Type.Field
	flags     map[string]bool // flags its non-test files define
	testFlags map[string]bool // flags its test files define
	outputs   map[string]bool // lines of its Example tests' output comments
}

// module is the module's source, as the checks need it.
type module struct {
	root     string
	tests    map[string]bool   // top-level test, benchmark, fuzz and example funcs
	byName   map[string]*pkg   // by directory name: cli, multireply, testserver, ...
	byDir    map[string]*pkg   // by directory, relative to the root
	programs map[string]bool   // top-level directories of package main
	top      map[string]bool   // top-level files and directories
	base     map[string]bool   // the name of every file in a non-hidden directory
	identRE  *regexp.Regexp    // pkg.Name for the module's own package names
	requires map[string]string // go.mod's required modules and their versions
}

// flagFuncs are flag.FlagSet's (and package flag's) definers, with the
// index of the flag's name among their arguments.
var flagFuncs = map[string]int{
	"Bool": 0, "BoolVar": 1, "String": 0, "StringVar": 1, "Int": 0, "IntVar": 1,
	"Int64": 0, "Int64Var": 1, "Uint": 0, "UintVar": 1, "Uint64": 0, "Uint64Var": 1,
	"Float64": 0, "Float64Var": 1, "Duration": 0, "DurationVar": 1, "Var": 1,
	"Func": 0, "BoolFunc": 0, "TextVar": 1,
}

// goTestFlags are go test's own flags, which a docs page may write alone or
// after the package (-args).
var goTestFlags = map[string]bool{
	"args": true, "bench": true, "benchmem": true, "benchtime": true, "count": true,
	"cpu": true, "cpuprofile": true, "memprofile": true, "race": true, "run": true,
	"short": true, "timeout": true, "v": true, "fuzz": true, "fuzztime": true,
	"failfast": true, "json": true, "skip": true, "shuffle": true, "parallel": true,
}

// libraryNames end in .go but name libraries, not files.
var libraryNames = map[string]bool{"nats.go": true, "orbit.go": true, "jsm.go": true}

var (
	loadOnce   sync.Once
	loaded     *module
	errLoading error
)

// theModule loads the module whose root is two directories up, once.
func theModule(t *testing.T) *module {
	t.Helper()
	loadOnce.Do(func() { loaded, errLoading = load(filepath.Join("..", "..")) })
	require.NoError(t, errLoading)
	return loaded
}

// load parses every Go file under root (hidden directories and testdata
// left out) and lists its files.
func load(root string) (*module, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return nil, fmt.Errorf("no module at %s: %w", root, err)
	}
	m := &module{root: root, tests: map[string]bool{}, byName: map[string]*pkg{}, byDir: map[string]*pkg{},
		programs: map[string]bool{}, top: map[string]bool{}, base: map[string]bool{}, requires: map[string]string{}}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	for _, sm := range requireRE.FindAllStringSubmatch(string(gomod), -1) {
		m.requires[sm[1]] = sm[2]
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		m.top[e.Name()] = true
	}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		m.base[d.Name()] = true
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		return m.parse(fset, p, filepath.ToSlash(rel))
	})
	if err != nil {
		return nil, err
	}
	var names []string
	for name := range m.byName {
		names = append(names, regexp.QuoteMeta(name))
	}
	slices.Sort(names)
	m.identRE = regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\.([A-Z]\w*)(?:\.([A-Z]\w*))?`)
	return m, nil
}

// parse adds one Go file's declarations, flags and Example outputs.
func (m *module) parse(fset *token.FileSet, file, dir string) error {
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	f, err := parser.ParseFile(fset, file, src, 0)
	if err != nil {
		return err
	}
	p := m.byDir[dir]
	if p == nil {
		p = &pkg{dir: dir, idents: map[string]bool{}, flags: map[string]bool{}, testFlags: map[string]bool{}, outputs: map[string]bool{}}
		m.byDir[dir] = p
		m.byName[path.Base(dir)] = p
	}
	isTest := strings.HasSuffix(file, "_test.go")
	if f.Name.Name == "main" && !strings.Contains(dir, "/") && dir != "." {
		m.programs[dir] = true
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if d.Recv == nil {
				p.idents[d.Name.Name] = true
				if isTest {
					m.tests[d.Name.Name] = true
				}
				continue
			}
			if recv := receiverName(d.Recv.List[0].Type); recv != "" {
				p.idents[recv+"."+d.Name.Name] = true
			}
		case *ast.GenDecl:
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					p.idents[s.Name.Name] = true
					if st, ok := s.Type.(*ast.StructType); ok {
						for _, field := range st.Fields.List {
							for _, n := range field.Names {
								p.idents[s.Name.Name+"."+n.Name] = true
							}
						}
					}
				case *ast.ValueSpec:
					for _, n := range s.Names {
						p.idents[n.Name] = true
					}
				}
			}
		}
	}
	flags := p.flags
	if isTest {
		flags = p.testFlags
	}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		i, ok := flagFuncs[sel.Sel.Name]
		if !ok || len(call.Args) < 3 {
			return true
		}
		if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if name, err := strconv.Unquote(lit.Value); err == nil {
				flags[name] = true
			}
		}
		return true
	})
	if isTest {
		addOutputs(p.outputs, string(src))
	}
	return nil
}

// receiverName is the type name of a method's receiver: T for T, *T, T[P].
func receiverName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return receiverName(t.X)
	case *ast.IndexExpr:
		return receiverName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return ""
}

// addOutputs adds the lines of every "// Output:" and "// Unordered output:"
// comment in src, trimmed.
func addOutputs(out map[string]bool, src string) {
	in := false
	for l := range strings.SplitSeq(src, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "// Output:" || l == "// Unordered output:":
			in = true
		case in && strings.HasPrefix(l, "//"):
			out[strings.TrimSpace(strings.TrimPrefix(l, "//"))] = true
		default:
			in = false
		}
	}
}

var (
	testNameRE  = regexp.MustCompile(`\b(?:Test|Benchmark|Fuzz|Example)[A-Z0-9_]\w*`)
	spanRE      = regexp.MustCompile("`([^`]+)`")
	linkRE      = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	goCmdRE     = regexp.MustCompile(`\bgo (run|test|build|vet|list|install) `)
	requireRE   = regexp.MustCompile(`(?m)^(?:require)?\s+(\S+) (v\S+)`)
	flagRE      = regexp.MustCompile(`^-([A-Za-z][\w.-]*)`)
	anyFlagRE   = regexp.MustCompile(`^-[a-z][\w.-]*( |$)`) // -secure, -demo leaf; not -ERR
	pathRE      = regexp.MustCompile(`^(\./)?[\w.-]+(/[\w.-]+)*/?$`)
	quoteHeadRE = regexp.MustCompile(`^//\s*((?:[\w.-]+/)*[\w.-]+\.go)\b`)
	outputHead  = "checked by `go test`"
)

// extract lists what the Markdown file (slash-separated, relative to the
// module root) with this text cites.
func (m *module) extract(file, text string) []citation {
	page := strings.TrimSuffix(path.Base(file), ".md")
	prog := ""
	if m.programs[page] && strings.HasPrefix(file, "docs/") {
		prog = page
	}
	var cs []citation
	add := func(c citation) {
		c.file = file
		cs = append(cs, c)
	}
	var (
		inFence      bool
		lang         string    // the open fence's language
		firstInFence bool      // the line is the fence's first
		quote        *citation // the Go snippet being read, if it names its file
		cmd          string    // a go command, whose usage may go on in the next lines
		cmdLine      int       // the line it began at
		outputTable  bool      // the lines are rows of the README's sample output
		para         []string  // the lines of the paragraph so far, outside fences
		paraLine     int       // the line it began at
	)
	flushPara := func() {
		if len(para) > 0 {
			cs = append(cs, m.spans(file, paraLine, strings.Join(para, "\n"), prog)...)
			para = nil
		}
	}
	flushCmd := func() {
		if cmd != "" {
			cs = append(cs, m.command(file, cmdLine, cmd)...)
			cmd = ""
		}
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		n := i + 1
		trimmed := strings.TrimSpace(l)
		if strings.HasPrefix(trimmed, "```") {
			flushCmd()
			flushPara()
			if !inFence {
				inFence, lang, firstInFence = true, strings.TrimPrefix(trimmed, "```"), true
				continue
			}
			if quote != nil {
				add(*quote)
				quote = nil
			}
			inFence = false
			continue
		}
		for _, name := range testNameRE.FindAllString(l, -1) {
			add(citation{kind: kindTest, line: n, text: name})
		}
		for _, sm := range m.identRE.FindAllStringSubmatch(l, -1) {
			name := sm[2]
			if sm[3] != "" {
				name += "." + sm[3]
			}
			add(citation{kind: kindIdent, line: n, text: name, in: sm[1]})
		}
		if inFence {
			first := firstInFence
			firstInFence = false
			if lang == "go" {
				switch {
				case first && quoteHeadRE.MatchString(trimmed):
					quote = &citation{kind: kindQuote, line: n, text: quoteHeadRE.FindStringSubmatch(trimmed)[1]}
				case first && file == "README.md":
					add(citation{kind: kindQuote, line: n, text: trimmed}) // no file named: an error
				case quote != nil:
					quote.body = append(quote.body, l)
				}
				continue
			}
			if cmd != "" && strings.HasPrefix(trimmed, "[") && l != trimmed {
				cmd += " " + uncomment(trimmed)
				continue
			}
			flushCmd()
			if loc := goCmdRE.FindStringIndex(l); loc != nil {
				cmd, cmdLine = uncomment(l[loc[0]:]), n
			}
			for _, tok := range strings.Fields(l) {
				tok = strings.Trim(tok, `"'()[],;`)
				if m.pathLike(tok) {
					add(citation{kind: kindPath, line: n, text: tok, in: prog})
				}
			}
			continue
		}
		flushCmd()

		// The README's table of sample output: each backquoted line of the
		// last cell is a line of the program's Example output.
		if strings.HasPrefix(trimmed, "|") && strings.Contains(trimmed, outputHead) {
			outputTable = true
		} else if !strings.HasPrefix(trimmed, "|") {
			outputTable = false
		} else if outputTable && !strings.HasPrefix(trimmed, "|---") {
			cells := strings.Split(strings.ReplaceAll(trimmed, `\|`, "\x00"), "|")
			if len(cells) > 3 {
				program := strings.Trim(strings.TrimSpace(cells[1]), "`")
				for _, sm := range spanRE.FindAllStringSubmatch(cells[len(cells)-2], -1) {
					add(citation{kind: kindOutput, line: n, text: strings.ReplaceAll(sm[1], "\x00", "|"), in: program})
				}
			}
		}

		if trimmed == "" {
			flushPara()
		} else {
			if len(para) == 0 {
				paraLine = n
			}
			para = append(para, l)
		}
	}
	flushPara()
	flushCmd()
	if quote != nil {
		add(*quote)
	}
	return cs
}

// uncomment is a shell line without its comment.
func uncomment(l string) string {
	if i := strings.Index(l, " #"); i >= 0 {
		return l[:i]
	}
	return l
}

// spans lists what the backquoted spans and the links of one paragraph,
// which begins at line start, cite. A span may go on over several lines.
func (m *module) spans(file string, start int, text, prog string) []citation {
	var cs []citation
	lineAt := func(offset int) int { return start + strings.Count(text[:offset], "\n") }
	add := func(c citation) {
		c.file = file
		cs = append(cs, c)
	}
	lastDir := prog
	for _, loc := range spanRE.FindAllStringSubmatchIndex(text, -1) {
		n := lineAt(loc[0])
		words := strings.Fields(text[loc[2]:loc[3]])
		span := strings.Join(words, " ")
		switch {
		case len(words) == 0:
		case goCmdRE.MatchString(span + " "):
			at := goCmdRE.FindStringIndex(span + " ")
			cs = append(cs, m.command(file, n, span[at[0]:])...)
		case prog != "" && flagRE.MatchString(span):
			for _, f := range flagNames(words) {
				add(citation{kind: kindFlag, line: n, text: f, in: prog, loose: true})
			}
		case prog == "" && anyFlagRE.MatchString(span):
			for _, f := range flagNames(words) {
				add(citation{kind: kindFlag, line: n, text: f, loose: true}) // of any program
			}
		case m.programs[words[0]] && strings.Contains(span, " -"):
			for _, f := range flagNames(words[1:]) {
				add(citation{kind: kindFlag, line: n, text: f, in: words[0]})
			}
		case strings.HasPrefix(span, "./") && len(words) == 1 && pathRE.MatchString(span):
			add(citation{kind: kindPackage, line: n, text: span})
		case m.pathLike(span) && strings.Contains(span, "/"):
			if st, err := os.Stat(filepath.Join(m.root, filepath.FromSlash(span))); err == nil && st.IsDir() {
				lastDir = strings.TrimSuffix(strings.TrimPrefix(span, "./"), "/")
			}
			add(citation{kind: kindPath, line: n, text: span})
		case m.pathLike(span):
			add(citation{kind: kindPath, line: n, text: span, in: lastDir})
		}
	}
	for _, loc := range linkRE.FindAllStringSubmatchIndex(text, -1) {
		if target := text[loc[2]:loc[3]]; !strings.Contains(target, "://") && !strings.HasPrefix(target, "mailto:") {
			add(citation{kind: kindLink, line: lineAt(loc[0]), text: target})
		}
	}
	return cs
}

// flagNames are the flags among words ("-max", "[-max", "-seed=1"), without
// their dash.
func flagNames(words []string) []string {
	var names []string
	for _, w := range words {
		if sm := flagRE.FindStringSubmatch(strings.TrimLeft(w, "[")); sm != nil {
			name, _, _ := strings.Cut(sm[1], "=")
			names = append(names, strings.TrimRight(name, "]"))
		}
	}
	return names
}

// command lists what a go command line cites: `go run ./prog -flag …`,
// `go test [flags] ./pkg… [-testflag …]`, `go build`/`vet`/`list` ./pkg,
// `go install module/cmd@version`. It ends at a comment, a redirection, a
// `;`, `&&` or a lone `&`.
func (m *module) command(file string, line int, cmd string) []citation {
	var cs []citation
	add := func(k kind, text, in string) {
		cs = append(cs, citation{kind: k, file: file, line: line, text: text, in: in})
	}
	fields := strings.Fields(cmd)
	verb := fields[1]
	var prog, lastPkg string
	for _, w := range fields[2:] {
		if w == "#" || strings.HasPrefix(w, "#") || w == ";" || w == "&&" || w == "&" || strings.HasPrefix(w, ">") || w == "done" {
			break
		}
		w = strings.Trim(w, `"'[]`)
		if verb == "install" {
			if p, v, ok := strings.Cut(w, "@"); ok {
				for mod := range m.requires {
					if p == mod || strings.HasPrefix(p, mod+"/") {
						add(kindVersion, v, mod)
					}
				}
			}
			continue
		}
		switch {
		case strings.HasPrefix(w, "./"):
			if w == "./..." {
				continue
			}
			if verb == "run" && prog != "" {
				continue // an argument of the program
			}
			dir := strings.TrimSuffix(strings.TrimPrefix(w, "./"), "/...")
			add(kindPackage, w, "")
			lastPkg = dir
			if verb == "run" {
				prog = dir
			}
		case verb == "run" && prog == "" && !strings.HasPrefix(w, "-"):
			return cs // go run of a remote module
		case verb == "run" && prog != "":
			for _, f := range flagNames([]string{w}) {
				add(kindFlag, f, prog)
			}
		case verb == "test" && lastPkg != "":
			for _, f := range flagNames([]string{w}) {
				add(kindTestFlag, f, lastPkg)
			}
		}
	}
	return cs
}

// pathLike reports whether a token names a file or directory of the module:
// under one of its top-level directories (internal/cli, tail/,
// security/locked-down.conf), or a file name with an extension of the
// module's files (hedge.go, multireply/shared.go), not a library's name.
func (m *module) pathLike(tok string) bool {
	if tok == "" || strings.ContainsAny(tok, ":@$~*=<>…") || strings.HasPrefix(tok, "/") || !pathRE.MatchString(tok) {
		return false
	}
	t := strings.TrimPrefix(tok, "./")
	first, _, nested := strings.Cut(t, "/")
	if nested && m.top[first] {
		return true
	}
	switch path.Ext(t) {
	case ".go", ".conf", ".md", ".mod", ".sum":
		return !libraryNames[t]
	}
	return false
}

// check returns why c does not hold, or nil.
func (m *module) check(c citation) error {
	switch c.kind {
	case kindTest:
		name, _, _ := strings.Cut(c.text, "/")
		if !m.tests[name] {
			return errors.New("no such func in any _test.go file")
		}
	case kindPackage:
		dir := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(c.text, "./"), "/..."), "/")
		if _, ok := m.byDir[dir]; !ok {
			return errors.New("no Go package in that directory")
		}
	case kindPath:
		p := strings.TrimPrefix(c.text, "./")
		switch {
		case strings.Contains(p, "/"):
		case c.in != "":
			p = c.in + "/" + p
		case !m.base[p]:
			return errors.New("no file of that name in the module")
		default:
			return nil
		}
		if _, err := os.Stat(filepath.Join(m.root, filepath.FromSlash(p))); err != nil {
			return fmt.Errorf("%s does not exist", p)
		}
	case kindFlag:
		if !m.flagOf(c.in, c.text, c.loose) {
			return fmt.Errorf("%s defines no flag -%s", c.in, c.text)
		}
	case kindTestFlag:
		p := m.byDir[c.in]
		if !goTestFlags[c.text] && (p == nil || !p.testFlags[c.text]) {
			return fmt.Errorf("neither go test nor the tests of ./%s define -%s", c.in, c.text)
		}
	case kindIdent:
		p := m.byName[c.in]
		if p == nil || !p.idents[c.text] {
			return fmt.Errorf("package %s has no %s", c.in, c.text)
		}
	case kindLink:
		return m.checkLink(c)
	case kindQuote:
		return m.checkQuote(c)
	case kindVersion:
		if want := m.requires[c.in]; c.text != want {
			return fmt.Errorf("go.mod requires %s %s", c.in, want)
		}
	case kindOutput:
		p := m.byDir[c.in]
		if p == nil || !m.programs[c.in] {
			return fmt.Errorf("%s is not a program", c.in)
		}
		if !p.outputs[strings.TrimSpace(c.text)] {
			return fmt.Errorf("no Example test of %s has this output line", c.in)
		}
	default:
		return fmt.Errorf("unknown kind %q", c.kind)
	}
	return nil
}

// flagOf reports whether program prog (any program if "") defines the flag
// name: itself, or through internal/cli (the flags every program has), or
// -h. loose also accepts its test flags and go test's.
func (m *module) flagOf(prog, name string, loose bool) bool {
	if prog == "" {
		for prog := range m.programs {
			if m.flagOf(prog, name, loose) {
				return true
			}
		}
		return false
	}
	p, cli := m.byDir[prog], m.byDir["internal/cli"]
	switch {
	case p == nil || !m.programs[prog]:
		return false
	case name == "h" || name == "help" || p.flags[name] || (cli != nil && cli.flags[name]):
		return true
	case loose:
		return p.testFlags[name] || goTestFlags[name]
	}
	return false
}

// checkLink checks that a relative link's file exists and, for a Markdown
// file, that its #anchor is one of the file's headings.
func (m *module) checkLink(c citation) error {
	target, anchor, _ := strings.Cut(c.text, "#")
	file := c.file
	if target != "" {
		file = path.Join(path.Dir(c.file), target)
	}
	full := filepath.Join(m.root, filepath.FromSlash(file))
	if _, err := os.Stat(full); err != nil {
		return fmt.Errorf("%s does not exist", file)
	}
	if anchor == "" || !strings.HasSuffix(file, ".md") {
		return nil
	}
	text, err := os.ReadFile(full)
	if err != nil {
		return err
	}
	if !slices.Contains(anchors(string(text)), anchor) {
		return fmt.Errorf("%s has no heading #%s", file, anchor)
	}
	return nil
}

// anchors are the ids GitHub gives a Markdown file's headings: lower case,
// punctuation dropped, spaces as dashes, -1, -2, ... for repeats.
func anchors(text string) []string {
	var ids []string
	seen := map[string]int{}
	inFence := false
	for l := range strings.SplitSeq(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(l, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(l, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		id := b.String()
		if k := seen[id]; k > 0 {
			ids = append(ids, fmt.Sprintf("%s-%d", id, k))
		} else {
			ids = append(ids, id)
		}
		seen[id]++
	}
	return ids
}

// checkQuote checks that a quoted Go snippet is in the file it names: its
// lines, in order, each right after the one before (blank lines aside),
// except where a line that begins with "// ..." (or is "...") marks lines
// left out.
func (m *module) checkQuote(c citation) error {
	if !quoteHeadRE.MatchString("// " + c.text) {
		return errors.New("a Go snippet in the README must begin with a comment naming the file it is quoted from (// dir/file.go)")
	}
	src, err := os.ReadFile(filepath.Join(m.root, filepath.FromSlash(c.text)))
	if err != nil {
		return fmt.Errorf("%s does not exist", c.text)
	}
	var lines []string
	for l := range strings.SplitSeq(string(src), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	at, gap := 0, true // the file's next line; whether lines may be skipped
	for k, q := range c.body {
		q = strings.TrimSpace(q)
		switch {
		case q == "":
			continue
		case q == "..." || strings.HasPrefix(q, "// ..."):
			gap = true
			continue
		}
		j := slices.Index(lines[at:], q)
		if j < 0 {
			return fmt.Errorf("%s:%d: %q is not in %s after its line %d", c.file, c.line+1+k, q, c.text, at)
		}
		if !gap && slices.ContainsFunc(lines[at:at+j], func(l string) bool { return l != "" }) {
			return fmt.Errorf("%s:%d: %q is not right after the line before it in %s (it is at line %d there): mark what is left out with // ...", c.file, c.line+1+k, q, c.text, at+j+1)
		}
		at, gap = at+j+1, false
	}
	return nil
}

// docFiles are README.md and docs/*.md, slash-separated, relative to the root.
func docFiles(t *testing.T, m *module) []string {
	t.Helper()
	files := []string{"README.md"}
	docs, err := filepath.Glob(filepath.Join(m.root, "docs", "*.md"))
	require.NoError(t, err)
	for _, d := range docs {
		files = append(files, "docs/"+filepath.Base(d))
	}
	return files
}

// TestDocsCiteWhatExists is the drift test: every citation of every
// Markdown file holds, by kind. A failure names the file and line.
func TestDocsCiteWhatExists(t *testing.T) {
	m := theModule(t)
	byKind := map[kind][]citation{}
	for _, file := range docFiles(t, m) {
		text, err := os.ReadFile(filepath.Join(m.root, filepath.FromSlash(file)))
		require.NoError(t, err)
		for _, c := range m.extract(file, string(text)) {
			byKind[c.kind] = append(byKind[c.kind], c)
		}
	}
	for _, k := range []kind{kindTest, kindPath, kindPackage, kindFlag, kindTestFlag, kindIdent, kindLink, kindQuote, kindOutput, kindVersion} {
		t.Run(string(k), func(t *testing.T) {
			assert.NotEmpty(t, byKind[k], "no %s cited at all: is the extractor still finding them?", k)
			t.Logf("%d citations", len(byKind[k]))
			for _, c := range byKind[k] {
				if err := m.check(c); err != nil {
					t.Errorf("%s:%d: %s %q: %v", c.file, c.line, c.kind, c.text, err)
				}
			}
		})
	}
}

// TestEveryFlagDocumented is the drift test the other way round: each flag
// a program defines is cited in its docs page (docs/<program>.md), and each
// flag internal/cli gives every program somewhere in the docs.
func TestEveryFlagDocumented(t *testing.T) {
	m := theModule(t)
	cited := map[string]map[string]bool{} // by page: docs/<program>.md, or "" for any
	for _, file := range docFiles(t, m) {
		text, err := os.ReadFile(filepath.Join(m.root, filepath.FromSlash(file)))
		require.NoError(t, err)
		for _, c := range m.extract(file, string(text)) {
			if c.kind != kindFlag {
				continue
			}
			for _, page := range []string{file, ""} {
				if cited[page] == nil {
					cited[page] = map[string]bool{}
				}
				cited[page][c.text] = true
			}
		}
	}
	var programs []string
	for prog := range m.programs {
		programs = append(programs, prog)
	}
	slices.Sort(programs)
	for _, prog := range programs {
		t.Run(prog, func(t *testing.T) {
			page := "docs/" + prog + ".md"
			for flag := range m.byDir[prog].flags {
				assert.True(t, cited[page][flag], "%s defines -%s, which %s does not cite", prog, flag, page)
			}
		})
	}
	t.Run("internal/cli", func(t *testing.T) {
		for flag := range m.byDir["internal/cli"].flags {
			assert.True(t, cited[""][flag], "internal/cli gives every program -%s, which no docs page cites", flag)
		}
	})
}

// TestREADMEFitsAScreen: at most 250 lines, its first Go code within the
// first 80.
func TestREADMEFitsAScreen(t *testing.T) {
	m := theModule(t)
	text, err := os.ReadFile(filepath.Join(m.root, "README.md"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	assert.LessOrEqual(t, len(lines), 250, "README.md lines")
	first := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "```go" })
	require.GreaterOrEqual(t, first, 0, "README.md has no Go code")
	assert.Less(t, first+1, 80, "README.md's first Go code is at line %d", first+2)
}

// TestExtract checks the extractor on single lines: what it finds, by kind,
// text and where it must hold.
func TestExtract(t *testing.T) {
	m := theModule(t)
	type found struct {
		kind     kind
		text, in string
	}
	tests := []struct {
		name, file, text string
		want             []found
	}{
		{"test names, subtest and regex", "docs/x.md", "`TestConformance/inbox` and `go test -run '^TestSoak$' ./queuegroup -soak`",
			[]found{{kindTest, "TestConformance", ""}, {kindTest, "TestSoak", ""}, {kindPackage, "./queuegroup", ""}, {kindTestFlag, "soak", "queuegroup"}}},
		{"go run flags, usage brackets", "README.md", "`go run ./multireply [-max 5] -variant=inbox`",
			[]found{{kindPackage, "./multireply", ""}, {kindFlag, "max", "multireply"}, {kindFlag, "variant", "multireply"}}},
		{"a flag alone in a program's page", "docs/tail.md", "with `-workers 1`, or `-request -pattern all`",
			[]found{{kindFlag, "workers", "tail"}, {kindFlag, "request", "tail"}, {kindFlag, "pattern", "tail"}}},
		{"a flag alone elsewhere is any program's", "docs/security.md", "`-secure`, `-cluster N`, not `-ERR 'Permissions Violation'`",
			[]found{{kindFlag, "secure", ""}, {kindFlag, "cluster", ""}}},
		{"a program and its flags", "docs/reliability.md", "(`singlereply joe -timeout 1s`)",
			[]found{{kindFlag, "timeout", "singlereply"}}},
		{"paths, a bare name in the last directory", "README.md", "`multireply/` holds `shared.go`; `security/locked-down.conf`, not `nats.go/micro`",
			[]found{{kindPath, "multireply/", ""}, {kindPath, "shared.go", "multireply"}, {kindPath, "security/locked-down.conf", ""}}},
		{"a bare name in a program's page", "docs/tail.md", "| `hedge.go` |", []found{{kindPath, "hedge.go", "tail"}}},
		{"identifiers", "README.md", "`denials.Request`, `multireply.Mux.Stream`, not tail.work or nats.ErrTimeout",
			[]found{{kindIdent, "Request", "denials"}, {kindIdent, "Mux.Stream", "multireply"}}},
		{"links", "docs/x.md", "see [Locked down](multireply.md#locked-down) and [nats](https://nats.io)",
			[]found{{kindLink, "multireply.md#locked-down", ""}}},
		{"go install of a required module", "docs/x.md", "`go install github.com/nats-io/nats-server/v2@v2.15.3` or `go install github.com/nats-io/natscli/nats@v0.5.0`",
			[]found{{kindVersion, "v2.15.3", "github.com/nats-io/nats-server/v2"}}},
		{"prose without citations", "README.md", "Tests and Examples run with go test; the tail of a queue.", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []found
			for _, c := range m.extract(tc.file, tc.text) {
				assert.Equal(t, 1, c.line)
				got = append(got, found{c.kind, c.text, c.in})
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestExtractBlocks checks the extractor on fenced blocks: commands with
// usage lines, and quoted Go.
func TestExtractBlocks(t *testing.T) {
	m := theModule(t)
	text := "```sh\n" +
		"go run ./multireply [-max N]   # comment -nope\n" +
		"                    [-stall D]\n" +
		"nats-server -c security/locked-down.conf\n" +
		"```\n" +
		"```go\n" +
		"// singlereply/greet.go\n" +
		"func Greet(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration) (string, error) {\n" +
		"\t// ...\n" +
		"}\n" +
		"```\n"
	cs := m.extract("README.md", text)
	require.Len(t, cs, 5)
	assert.Equal(t, []kind{kindPackage, kindFlag, kindFlag, kindPath, kindQuote},
		[]kind{cs[0].kind, cs[1].kind, cs[2].kind, cs[3].kind, cs[4].kind})
	assert.Equal(t, []string{"max", "stall"}, []string{cs[1].text, cs[2].text})
	assert.Equal(t, 2, cs[2].line)
	assert.Equal(t, "security/locked-down.conf", cs[3].text)
	assert.Equal(t, "singlereply/greet.go", cs[4].text)
	assert.Len(t, cs[4].body, 3)
	for _, c := range cs {
		assert.NoError(t, m.check(c), c.String())
	}
}

// TestCheck: a known-good and a known-bad citation of each kind.
func TestCheck(t *testing.T) {
	m := theModule(t)
	tests := []struct {
		name string
		c    citation
		ok   bool
	}{
		{"test", citation{kind: kindTest, text: "TestGatherDenied"}, true},
		{"test with subtest", citation{kind: kindTest, text: "TestSeparateProcesses/^multireply"}, true},
		{"example", citation{kind: kindTest, text: "Example_silent"}, true},
		{"no such test", citation{kind: kindTest, text: "TestNoSuchThing"}, false},
		{"package", citation{kind: kindPackage, text: "./internal/e2e"}, true},
		{"no such package", citation{kind: kindPackage, text: "./nosuch"}, false},
		{"path", citation{kind: kindPath, text: "denials/request.go"}, true},
		{"bare name in its directory", citation{kind: kindPath, text: "restart.go", in: "tail"}, true},
		{"bare name in another directory", citation{kind: kindPath, text: "restart.go", in: "queuegroup"}, false},
		{"no such path", citation{kind: kindPath, text: "security/open.conf"}, false},
		{"program flag", citation{kind: kindFlag, text: "max", in: "multireply"}, true},
		{"common flag", citation{kind: kindFlag, text: "max-reconnects", in: "tail"}, true},
		{"another program's flag", citation{kind: kindFlag, text: "max", in: "singlereply"}, false},
		{"any program's flag", citation{kind: kindFlag, text: "supercluster", loose: true}, true},
		{"no program's flag", citation{kind: kindFlag, text: "superclusters", loose: true}, false},
		{"test flag given to the program", citation{kind: kindFlag, text: "soak", in: "queuegroup"}, false},
		{"test flag in its page", citation{kind: kindFlag, text: "soak", in: "queuegroup", loose: true}, true},
		{"test flag after the package", citation{kind: kindTestFlag, text: "stress.seed", in: "gather"}, true},
		{"no such test flag", citation{kind: kindTestFlag, text: "soak", in: "multireply"}, false},
		{"identifier", citation{kind: kindIdent, text: "Request", in: "denials"}, true},
		{"method", citation{kind: kindIdent, text: "Env.ConnectNodeAs", in: "cli"}, true},
		{"no such identifier", citation{kind: kindIdent, text: "RequestWithContext", in: "cli"}, false},
		{"version", citation{kind: kindVersion, text: "v1.56.0", in: "github.com/nats-io/nats.go"}, true},
		{"another version", citation{kind: kindVersion, text: "v1.55.0", in: "github.com/nats-io/nats.go"}, false},
		{"output", citation{kind: kindOutput, text: "hello, joe", in: "singlereply"}, true},
		{"no such output", citation{kind: kindOutput, text: "hello, jim", in: "singlereply"}, false},
		{"link", citation{kind: kindLink, file: "README.md", text: "security/locked-down.conf"}, true},
		{"no such link", citation{kind: kindLink, file: "README.md", text: "docs/nothing.md"}, false},
		{"quote", citation{kind: kindQuote, text: "singlereply/greet.go", body: []string{"func Greet(ctx context.Context, nc *nats.Conn, name string, timeout time.Duration) (string, error) {", "...", "}"}}, true},
		{"quote out of order", citation{kind: kindQuote, text: "singlereply/greet.go", body: []string{"defer cancel()", "rctx, cancel := context.WithTimeout(ctx, timeout)"}}, false},
		{"quote leaving out lines unmarked", citation{kind: kindQuote, text: "singlereply/greet.go", body: []string{"rctx, cancel := context.WithTimeout(ctx, timeout)", "switch {"}}, false},
		{"quote leaving out lines marked", citation{kind: kindQuote, text: "singlereply/greet.go", body: []string{"rctx, cancel := context.WithTimeout(ctx, timeout)", "\t// ... the request", "switch {"}}, true},
		{"quote naming no file", citation{kind: kindQuote, text: "res, err := Gather(ctx, mux, subject, nil)"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := m.check(tc.c)
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

// TestAnchors: GitHub's heading ids.
func TestAnchors(t *testing.T) {
	got := anchors("# A: b, c\n```\n# not a heading\n```\n## Locked down\n## Locked down\n### `-secure` and -cluster\n")
	assert.Equal(t, []string{"a-b-c", "locked-down", "locked-down-1", "-secure-and--cluster"}, got)
}
