package onionlite

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// This file checks that the sample apps (which cannot be built here: no
// Android SDK, no Xcode) use the facade as gobind exposes it. It reads the
// generated Java classes and Objective-C header, derives the Kotlin and
// Swift views of them, and checks every facade reference in the sample
// sources: classes, constructors, methods (with their argument counts, and
// in Swift their argument labels and whether they throw), properties,
// constants, package functions and callback implementations.

// codeOnly blanks comments and the text of string literals (keeping
// newlines and the code inside string interpolations: Kotlin "${...}",
// Swift "\(...)"), so that only code is scanned.
func codeOnly(src string, swift bool) string {
	b := []byte(src)
	out := make([]byte, len(b))
	copy(out, b)
	blank := func(i int) {
		if out[i] != '\n' {
			out[i] = ' '
		}
	}
	// Stack of contexts: 's' in a string, 'c' in code inside an
	// interpolation (with its own paren/brace depth).
	type ctx struct {
		kind  byte
		depth int
	}
	stack := []ctx{{kind: 'c'}}
	for i := 0; i < len(b); i++ {
		top := &stack[len(stack)-1]
		if top.kind == 's' {
			switch {
			case b[i] == '\\' && swift && i+1 < len(b) && b[i+1] == '(':
				blank(i)
				stack = append(stack, ctx{kind: 'c'})
				i++ // keep "(" as code: it opens the interpolation
				stack[len(stack)-1].depth = 1
			case b[i] == '\\':
				blank(i)
				if i+1 < len(b) {
					i++
					blank(i)
				}
			case b[i] == '$' && !swift && i+1 < len(b) && b[i+1] == '{':
				blank(i)
				i++
				stack = append(stack, ctx{kind: 'c', depth: 1})
			case b[i] == '"':
				stack = stack[:len(stack)-1]
			default:
				blank(i)
			}
			continue
		}
		switch {
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '/':
			for ; i < len(b) && b[i] != '\n'; i++ {
				blank(i)
			}
		case b[i] == '/' && i+1 < len(b) && b[i+1] == '*':
			for ; i < len(b) && !(b[i] == '*' && i+1 < len(b) && b[i+1] == '/'); i++ {
				blank(i)
			}
			if i+1 < len(b) {
				blank(i)
				blank(i + 1)
				i++
			}
		case b[i] == '"':
			stack = append(stack, ctx{kind: 's'})
		case b[i] == '\'' && !swift: // Kotlin char literal
			for i++; i < len(b) && b[i] != '\''; i++ {
				if b[i] == '\\' {
					blank(i)
					i++
				}
				blank(i)
			}
		case len(stack) > 1 && (b[i] == '(' || b[i] == '{'):
			top.depth++
		case len(stack) > 1 && (b[i] == ')' || b[i] == '}'):
			top.depth--
			if top.depth == 0 {
				stack = stack[:len(stack)-1]
				if !swift || b[i] == ')' {
					blank(i)
				}
			}
		}
	}
	return string(out)
}

func TestCodeOnly(t *testing.T) {
	k := codeOnly(`val a = "x ${client.stop()} y" // client.dial()`+"\n"+`/* c.read() */ c.write(b)`, false)
	if !strings.Contains(k, "client.stop()") || strings.Contains(k, "dial") || strings.Contains(k, "read") ||
		!strings.Contains(k, "c.write(b)") || strings.Contains(k, "x ") {
		t.Errorf("kotlin: %q", k)
	}
	s := codeOnly(`let a = "x \(m.page.host ?? "") y \(client.statsJSON())"; c.stop() // d.e()`, true)
	if !strings.Contains(s, "m.page.host ??") || !strings.Contains(s, "client.statsJSON()") ||
		!strings.Contains(s, "c.stop()") || strings.Contains(s, "d.e") || strings.Contains(s, " y ") {
		t.Errorf("swift: %q", s)
	}
}

// memberRef is "recv.member" (or "recv?.member", "recv!!.member") in
// code; chains give one per dot ("self.client?.stop" gives self.client
// and client.stop).
type memberRef struct {
	recv, member string
	start        int // of recv
	end          int // after member
}

var dotMemberRE = regexp.MustCompile(`\.\s*(\w+)`)

func memberRefs(src string) []memberRef {
	var refs []memberRef
	for _, loc := range dotMemberRE.FindAllStringSubmatchIndex(src, -1) {
		j := loc[0]
		for j > 0 && strings.ContainsRune(" \t?!", rune(src[j-1])) {
			j--
		}
		k := j
		for k > 0 && (isIdent(src[k-1])) {
			k--
		}
		if k == j || (src[k] >= '0' && src[k] <= '9') {
			continue
		}
		refs = append(refs, memberRef{recv: src[k:j], member: src[loc[2]:loc[3]], start: k, end: loc[3]})
	}
	return refs
}

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// callArgs returns the top-level arguments of the call whose "(" is at
// src[open], and the index after its ")".
func callArgs(src string, open int) ([]string, int) {
	depth := 0
	start := open + 1
	var args []string
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				if a := strings.TrimSpace(src[start:i]); a != "" || len(args) > 0 {
					args = append(args, a)
				}
				return args, i + 1
			}
		case ',':
			if depth == 1 {
				args = append(args, strings.TrimSpace(src[start:i]))
				start = i + 1
			}
		}
	}
	return args, len(src)
}

// block returns the text between the "{" at or after src[from] and its
// matching "}".
func block(src string, from int) string {
	open := strings.IndexByte(src[from:], '{')
	if open < 0 {
		return ""
	}
	open += from
	depth := 0
	for i := open; i < len(src); i++ {
		switch src[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return src[open+1 : i]
			}
		}
	}
	return src[open+1:]
}

func readSources(t *testing.T, dir, ext string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ext) {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files[p] = string(b)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no %s files under %s", ext, dir)
	}
	return files
}

// javaAPI is the Java binding as Kotlin sees it.
type javaAPI struct {
	methods map[string]map[string][]int // class → method → arities
	ctors   map[string][]int            // class → constructor arities
	consts  map[string]bool             // Onionlite.X constants
	ifaces  map[string]bool
}

var (
	javaMethodRE = regexp.MustCompile(`(?m)^\s*public (?:static )?(?:final )?(?:native )?[\w.\[\]]+ (\w+)\(([^)]*)\)`)
	javaConstRE  = regexp.MustCompile(`(?m)^\s*public static final \S+ (\w+) = `)
)

func arity(params string) int {
	if strings.TrimSpace(params) == "" {
		return 0
	}
	return strings.Count(params, ",") + 1
}

func parseJavaAPI(t *testing.T, dir string) *javaAPI {
	t.Helper()
	api := &javaAPI{methods: map[string]map[string][]int{}, ctors: map[string][]int{}, consts: map[string]bool{}, ifaces: map[string]bool{}}
	for path, src := range readSources(t, dir, ".java") {
		class := strings.TrimSuffix(filepath.Base(path), ".java")
		api.methods[class] = map[string][]int{}
		if strings.Contains(src, "public interface "+class+" ") {
			api.ifaces[class] = true
		}
		// Only the top-level class: cut out the nested proxy classes.
		for {
			i := strings.Index(src, "private static final class")
			if i < 0 {
				break
			}
			body := block(src, i)
			end := strings.Index(src[i:], body) + i + len(body) + 1
			src = src[:i] + src[end:]
		}
		for _, m := range javaMethodRE.FindAllStringSubmatch(src, -1) {
			api.methods[class][m[1]] = append(api.methods[class][m[1]], arity(m[2]))
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*public `+class+`\(([^)]*)\)`).FindAllStringSubmatch(src, -1) {
			api.ctors[class] = append(api.ctors[class], arity(m[1]))
		}
		if class == "Onionlite" {
			for _, m := range javaConstRE.FindAllStringSubmatch(src, -1) {
				api.consts[m[1]] = true
			}
		}
	}
	return api
}

func hasArity(list []int, n int) bool {
	for _, a := range list {
		if a == n {
			return true
		}
	}
	return false
}

// reporter receives the checkers' findings: a *testing.T, or a recorder
// in the test of the checkers themselves.
type reporter interface {
	Errorf(format string, args ...any)
}

type findings struct{ msgs []string }

func (f *findings) Errorf(format string, args ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}

// checker records what a scan checked, so that a scan that saw nothing
// fails.
type checker struct {
	checked map[string]bool
}

func (c *checker) ok(what string) { c.checked[what] = true }

func (c *checker) require(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if !c.checked[n] {
			var got []string
			for k := range c.checked {
				got = append(got, k)
			}
			sort.Strings(got)
			t.Errorf("the scan never checked %s (checked: %s)", n, strings.Join(got, " "))
		}
	}
}

var (
	ktDeclTypeRE  = regexp.MustCompile(`\b(?:val|var)\s+(\w+)\s*:\s*(\w+)\??`)
	ktDeclCtorRE  = regexp.MustCompile(`\b(?:val|var)\s+(\w+)\s*=\s*(\w+)\s*\(`)
	ktParamRE     = regexp.MustCompile(`[(,]\s*(\w+)\s*:\s*(\w+)\??\s*[,)=]`)
	ktAliasRE     = regexp.MustCompile(`\b(?:val|var)\s+(\w+)\s*=\s*(\w+)\s*(?:\?:|\n)`)
	ktImportRE    = regexp.MustCompile(`(?m)^import onionlite\.(\w+)$`)
	ktSAMRE       = regexp.MustCompile(`\b(\w+)\s*\{\s*((?:\w+\s*,\s*)*\w+)?\s*->`)
	ktObjectRE    = regexp.MustCompile(`\bobject\s*:\s*(\w+)\s*\{`)
	ktOverrideRE  = regexp.MustCompile(`\boverride fun (\w+)\(([^)]*)\)`)
	ktCtorCallRE  = regexp.MustCompile(`\b([A-Z]\w*)\s*\(`)
	ktAssignAfter = regexp.MustCompile(`^\s*=[^=]`)
)

// kotlinProperty maps a Kotlin property name to the Java getter.
func kotlinGetter(prop string) string { return "get" + strings.ToUpper(prop[:1]) + prop[1:] }
func kotlinSetter(prop string) string { return "set" + strings.ToUpper(prop[:1]) + prop[1:] }

func checkKotlin(t reporter, api *javaAPI, files map[string]string) *checker {
	c := &checker{checked: map[string]bool{}}
	for path, raw := range files {
		src := codeOnly(raw, false)
		rel := filepath.Base(path)
		for _, m := range ktImportRE.FindAllStringSubmatch(raw, -1) {
			if _, ok := api.methods[m[1]]; !ok {
				t.Errorf("%s: import onionlite.%s: the binding has no such class", rel, m[1])
			}
			c.ok("import " + m[1])
		}
		facade := func(typ string) bool {
			_, ok := api.methods[typ]
			return ok && typ != "Onionlite"
		}
		types := map[string]string{}
		for _, m := range ktDeclTypeRE.FindAllStringSubmatch(src, -1) {
			if facade(m[2]) {
				types[m[1]] = m[2]
			}
		}
		for _, m := range ktParamRE.FindAllStringSubmatch(src, -1) {
			if facade(m[2]) {
				types[m[1]] = m[2]
			}
		}
		for _, m := range ktDeclCtorRE.FindAllStringSubmatch(src, -1) {
			if facade(m[2]) {
				types[m[1]] = m[2]
			}
		}
		for _, m := range ktAliasRE.FindAllStringSubmatch(src, -1) {
			if typ, ok := types[m[2]]; ok {
				types[m[1]] = typ
			}
		}
		// Constructor calls: Client(config), Config().
		for _, loc := range ktCtorCallRE.FindAllStringSubmatchIndex(src, -1) {
			class := src[loc[2]:loc[3]]
			if !facade(class) || api.ifaces[class] {
				continue
			}
			args, _ := callArgs(src, loc[1]-1)
			if !hasArity(api.ctors[class], len(args)) {
				t.Errorf("%s: %s(%d arguments): the binding's constructors take %v", rel, class, len(args), api.ctors[class])
			}
			c.ok(class + "()")
		}
		// Member references on facade-typed names and on Onionlite.
		for _, ref := range memberRefs(src) {
			recv, member := ref.recv, ref.member
			class := types[recv]
			if recv == "Onionlite" {
				class = "Onionlite"
			}
			if class == "" {
				continue
			}
			rest := src[ref.end:]
			methods := api.methods[class]
			switch {
			case strings.HasPrefix(strings.TrimLeft(rest, " "), "("):
				open := ref.end + strings.IndexByte(rest, '(')
				args, _ := callArgs(src, open)
				if !hasArity(methods[member], len(args)) {
					t.Errorf("%s: %s.%s(%d arguments): %s has %s with arities %v", rel, recv, member, len(args), class, member, methods[member])
				}
			case class == "Onionlite":
				if !api.consts[member] {
					t.Errorf("%s: Onionlite.%s: no such constant", rel, member)
				}
			case ktAssignAfter.MatchString(rest):
				if !hasArity(methods[kotlinSetter(member)], 1) {
					t.Errorf("%s: %s.%s = ...: %s has no %s", rel, recv, member, class, kotlinSetter(member))
				}
			default:
				if !hasArity(methods[kotlinGetter(member)], 0) {
					t.Errorf("%s: %s.%s: %s has no %s()", rel, recv, member, class, kotlinGetter(member))
				}
			}
			c.ok(member)
		}
		// Callback implementations: SAM lambdas and objects.
		for _, m := range ktSAMRE.FindAllStringSubmatch(src, -1) {
			if !api.ifaces[m[1]] {
				continue
			}
			n := 0
			if m[2] != "" {
				n = strings.Count(m[2], ",") + 1
			}
			found := false
			for _, ar := range api.methods[m[1]] {
				found = found || hasArity(ar, n)
			}
			if !found || len(api.methods[m[1]]) != 1 {
				t.Errorf("%s: %s { %d parameters -> }: not the interface's one method %v", rel, m[1], n, api.methods[m[1]])
			}
			c.ok(m[1] + " lambda")
		}
		for _, loc := range ktObjectRE.FindAllStringSubmatchIndex(src, -1) {
			iface := src[loc[2]:loc[3]]
			if !api.ifaces[iface] {
				continue
			}
			body := block(src, loc[0])
			overrides := ktOverrideRE.FindAllStringSubmatch(body, -1)
			if len(overrides) != len(api.methods[iface]) {
				t.Errorf("%s: object : %s overrides %d methods, the interface has %d", rel, iface, len(overrides), len(api.methods[iface]))
			}
			for _, o := range overrides {
				if !hasArity(api.methods[iface][o[1]], arity(o[2])) {
					t.Errorf("%s: object : %s overrides %s(%s): not in the interface", rel, iface, o[1], o[2])
				}
				c.ok(iface + "." + o[1])
			}
		}
	}
	return c
}

// objcMethod is a method of the generated header, as Swift imports it.
type objcMethod struct {
	base   string
	labels []string // "_" for an unlabelled argument
	throws bool
	ret    string
	params []string // parameter types, error excluded when it throws
}

type objcAPI struct {
	classes   map[string]map[string]objcMethod // class or protocol → base name → method
	props     map[string]map[string]string     // class → property → type
	protocols map[string]bool
	funcs     map[string]objcFunc
	consts    map[string]bool
}

type objcFunc struct {
	ret    string
	params int
}

var (
	objcBlockRE  = regexp.MustCompile(`(?m)^@(interface|protocol) (Onionlite\w+)\b[^\n]*\n((?s:.*?))^@end`)
	objcMethodRE = regexp.MustCompile(`(?m)^- \(([^)]*)\)(\w+)(.*);`)
	objcPieceRE  = regexp.MustCompile(`(\w+):\(([^)]*)\)\w+`)
	objcPropRE   = regexp.MustCompile(`(?m)^@property \(nonatomic\) (.*?)\s*\b(\w+);`)
	objcFuncRE   = regexp.MustCompile(`(?m)^FOUNDATION_EXPORT (.*?)\b(Onionlite\w+)\(([^)]*)\);`)
	objcConstRE  = regexp.MustCompile(`(?m)^FOUNDATION_EXPORT [^(\n]*?\b(Onionlite\w+);`)
)

// camelWords splits "startSOCKS" into "start", "SOCKS".
func camelWords(s string) []string {
	var words []string
	start := 0
	for i := 1; i < len(s); i++ {
		up, prevUp := s[i] >= 'A' && s[i] <= 'Z', s[i-1] >= 'A' && s[i-1] <= 'Z'
		nextLow := i+1 < len(s) && s[i+1] >= 'a' && s[i+1] <= 'z'
		if up && (!prevUp || nextLow) {
			words = append(words, s[start:i])
			start = i
		}
	}
	return append(words, s[start:])
}

// typeWord is the last word of an Objective-C type's name, as Swift's
// omit-needless-words matches it ("NSString* _Nullable" → "String").
func typeWord(typ string) string {
	typ = strings.NewReplacer("_Nullable", "", "_Nonnull", "", "*", "", "id<", "", ">", "").Replace(typ)
	typ = strings.TrimSpace(typ)
	w := camelWords(typ)
	return w[len(w)-1]
}

var prepositions = map[string]bool{"on": true, "to": true, "for": true, "with": true, "from": true, "in": true,
	"at": true, "by": true, "of": true, "into": true, "onto": true, "after": true, "before": true, "since": true,
	"until": true, "via": true, "using": true, "within": true, "as": true}

func parseObjCAPI(t reporter, header string) *objcAPI {
	api := &objcAPI{classes: map[string]map[string]objcMethod{}, props: map[string]map[string]string{},
		protocols: map[string]bool{}, funcs: map[string]objcFunc{}, consts: map[string]bool{}}
	for _, b := range objcBlockRE.FindAllStringSubmatch(header, -1) {
		kind, name, body := b[1], b[2], b[3]
		if kind == "protocol" {
			api.protocols[name] = true
		}
		if api.classes[name] == nil {
			api.classes[name] = map[string]objcMethod{}
			api.props[name] = map[string]string{}
		}
		for _, m := range objcMethodRE.FindAllStringSubmatch(body, -1) {
			ret, first, rest := m[1], m[2], m[3]
			meth := objcMethod{base: first, ret: ret}
			pieces := objcPieceRE.FindAllStringSubmatch(first+rest, -1)
			for i, p := range pieces {
				if i == len(pieces)-1 && strings.Contains(p[2], "NSError*") &&
					(ret == "BOOL" || strings.Contains(ret, "_Nullable") || strings.HasPrefix(ret, "nullable")) {
					meth.throws = true
					break
				}
				label := p[1]
				if i == 0 {
					label = "_"
				}
				meth.labels = append(meth.labels, label)
				meth.params = append(meth.params, p[2])
			}
			if first == "init" || first == "initWithRef" {
				continue
			}
			// Swift would rename a method whose name ends with its first
			// parameter's type (omit-needless-words), unless what is left
			// is a lone preposition; the derivation here assumes it does
			// not, so such a facade name must not exist.
			if len(meth.params) > 0 {
				w := camelWords(first)
				if len(w) > 1 && w[len(w)-1] == typeWord(meth.params[0]) && !(len(w) == 2 && prepositions[w[0]]) {
					t.Errorf("%s.%s: Swift would shorten this name (it ends with its parameter's type %s); rename it in the facade",
						name, first, meth.params[0])
				}
			}
			api.classes[name][first] = meth
		}
		for _, p := range objcPropRE.FindAllStringSubmatch(body, -1) {
			api.props[name][p[2]] = p[1]
		}
	}
	for _, f := range objcFuncRE.FindAllStringSubmatch(header, -1) {
		api.funcs[f[2]] = objcFunc{ret: strings.TrimSpace(f[1]), params: arity(f[3])}
	}
	for _, c := range objcConstRE.FindAllStringSubmatch(header, -1) {
		api.consts[c[1]] = true
	}
	return api
}

// swiftClass is the Objective-C class (or protocol) a Swift type name
// refers to: a protocol that shares its name with a class gets the suffix
// "Protocol" in Swift.
func (api *objcAPI) swiftClass(name string) (string, bool) {
	if base, ok := strings.CutSuffix(name, "Protocol"); ok && api.protocols[base] {
		return base, true
	}
	_, ok := api.classes[name]
	if ok && api.protocols[name] {
		return "", false // the bare name is the proxy class, not the protocol
	}
	return name, ok
}

// retClass is the facade class a method or function returns, if any.
func retClass(ret string) string {
	m := regexp.MustCompile(`(Onionlite\w+)\*`).FindStringSubmatch(ret)
	if m == nil {
		return ""
	}
	return m[1]
}

var (
	swDeclTypeRE   = regexp.MustCompile(`\b(\w+)\s*:\s*(Onionlite\w+)[?!]?`)
	swDeclInitRE   = regexp.MustCompile(`\b(?:let|var)\s+(\w+)\s*=\s*(?:try[?!]?\s+)?(Onionlite\w+)\s*\(`)
	swDeclCallRE   = regexp.MustCompile(`\b(?:let|var)\s+(\w+)\s*=\s*(?:try[?!]?\s+)?(\w+)[?!]?\.(\w+)\s*\(`)
	swOnionliteRE  = regexp.MustCompile(`\bOnionlite\w+`)
	swConformRE    = regexp.MustCompile(`\bclass\s+\w+\s*:[^{]*\b(Onionlite\w+Protocol)\b[^{]*\{`)
	swFuncDeclRE   = regexp.MustCompile(`\bfunc (\w+)\(([^)]*)\)\s*(throws)?`)
	swLabelRE      = regexp.MustCompile(`^\s*(\w+)\s*:[^:]`)
	swAssignAfter  = regexp.MustCompile(`^\s*=[^=]`)
	swImportRE     = regexp.MustCompile(`(?m)^import Onionlite$`)
	swTryBeforeRE  = regexp.MustCompile(`\btry[?!]?\s+(?:\w+\s*[?!]?\.\s*)*$`)
	swCalledFuncRE = regexp.MustCompile(`\b(Onionlite\w+)\s*\(`)
)

func checkSwift(t reporter, api *objcAPI, files map[string]string) *checker {
	c := &checker{checked: map[string]bool{}}
	imported := false
	for path, raw := range files {
		src := codeOnly(raw, true)
		rel := filepath.Base(path)
		imported = imported || swImportRE.MatchString(src)
		// Every Onionlite identifier names something in the header.
		for _, id := range swOnionliteRE.FindAllString(src, -1) {
			_, isClass := api.swiftClass(id)
			_, isFunc := api.funcs[id]
			switch {
			case api.protocols[id]:
				t.Errorf("%s: %s is gobind's proxy class; Swift calls the protocol %sProtocol", rel, id, id)
			case !isClass && !isFunc && !api.consts[id]:
				t.Errorf("%s: %s is not in Onionlite.objc.h (as Swift sees it)", rel, id)
			}
			c.ok(id)
		}
		types := map[string]string{}
		for _, m := range swDeclTypeRE.FindAllStringSubmatch(src, -1) {
			if cls, ok := api.swiftClass(m[2]); ok {
				types[m[1]] = cls
			}
		}
		for _, m := range swDeclInitRE.FindAllStringSubmatch(src, -1) {
			if f, ok := api.funcs[m[2]]; ok && retClass(f.ret) != "" {
				types[m[1]] = retClass(f.ret)
			} else if cls, ok := api.swiftClass(m[2]); ok {
				types[m[1]] = cls
			}
		}
		for _, m := range swDeclCallRE.FindAllStringSubmatch(src, -1) {
			if cls := types[m[2]]; cls != "" {
				if r := retClass(api.classes[cls][m[3]].ret); r != "" {
					types[m[1]] = r
				}
			}
		}
		// Package functions: argument counts.
		for _, loc := range swCalledFuncRE.FindAllStringSubmatchIndex(src, -1) {
			name := src[loc[2]:loc[3]]
			f, ok := api.funcs[name]
			if !ok {
				if _, isClass := api.swiftClass(name); isClass {
					args, _ := callArgs(src, loc[1]-1)
					if len(args) != 0 {
						t.Errorf("%s: %s(%d arguments): only the no-argument init is used by the samples", rel, name, len(args))
					}
					c.ok(name + "()")
				}
				continue
			}
			args, _ := callArgs(src, loc[1]-1)
			if len(args) != f.params {
				t.Errorf("%s: %s with %d arguments, the header's takes %d", rel, name, len(args), f.params)
			}
			c.ok(name + "()")
		}
		// Members of facade-typed names.
		for _, ref := range memberRefs(src) {
			recv, member := ref.recv, ref.member
			cls := types[recv]
			if cls == "" {
				continue
			}
			rest := src[ref.end:]
			if meth, ok := api.classes[cls][member]; ok && strings.HasPrefix(strings.TrimLeft(rest, " "), "(") {
				open := ref.end + strings.IndexByte(rest, '(')
				args, _ := callArgs(src, open)
				var labels []string
				for _, a := range args {
					if m := swLabelRE.FindStringSubmatch(a); m != nil {
						labels = append(labels, m[1])
					} else {
						labels = append(labels, "_")
					}
				}
				if strings.Join(labels, ",") != strings.Join(meth.labels, ",") {
					t.Errorf("%s: %s.%s(%s): Swift's labels are (%s)", rel, recv, member, strings.Join(labels, ", "), strings.Join(meth.labels, ", "))
				}
				tried := swTryBeforeRE.MatchString(src[:ref.start])
				if meth.throws != tried {
					t.Errorf("%s: %s.%s: throws is %v in Swift, the call has try %v", rel, recv, member, meth.throws, tried)
				}
				c.ok(member)
				continue
			}
			if typ, ok := api.props[cls][member]; ok {
				_ = typ
				c.ok(member)
				continue
			}
			assign := ""
			if swAssignAfter.MatchString(rest) {
				assign = " (assigned)"
			}
			t.Errorf("%s: %s.%s%s: %s has no such method or property", rel, recv, member, assign, cls)
		}
		// Protocol implementations.
		for _, loc := range swConformRE.FindAllStringSubmatchIndex(src, -1) {
			proto, _ := api.swiftClass(src[loc[2]:loc[3]])
			body := block(src, loc[0])
			want := api.classes[proto]
			implemented := 0
			for _, f := range swFuncDeclRE.FindAllStringSubmatch(body, -1) {
				meth, ok := want[f[1]]
				if !ok {
					continue
				}
				implemented++
				var labels []string
				for _, p := range strings.Split(f[2], ",") {
					if fields := strings.Fields(strings.SplitN(p, ":", 2)[0]); len(fields) > 0 {
						labels = append(labels, fields[0])
					}
				}
				if strings.Join(labels, ",") != strings.Join(meth.labels, ",") || (f[3] == "throws") != meth.throws {
					t.Errorf("%s: func %s(%s) %s does not match %s's (%s) throws=%v", rel, f[1], f[2], f[3], proto,
						strings.Join(meth.labels, ", "), meth.throws)
				}
				c.ok(proto + "." + f[1])
			}
			if implemented != len(want) {
				t.Errorf("%s: a %sProtocol implements %d of its %d methods", rel, proto, implemented, len(want))
			}
		}
	}
	if !imported {
		t.Errorf("no Swift file imports Onionlite")
	}
	return c
}

// TestSamplesUseTheFacade checks the Kotlin sample (mobile/android/sample)
// against the Java binding and the Swift sample (mobile/ios/Sample) against
// the Objective-C header, both freshly generated by gobind.
func TestSamplesUseTheFacade(t *testing.T) {
	if testing.Short() {
		t.Skip("gobind takes a while; skipped in -short mode")
	}
	out := gobind(t, "go,java,objc")
	header, err := os.ReadFile(filepath.Join(out, "src/gobind/Onionlite.objc.h"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("kotlin", func(t *testing.T) {
		c := checkKotlin(t, parseJavaAPI(t, filepath.Join(out, "java/onionlite")), readSources(t, "android/sample", ".kt"))
		c.require(t, "Client()", "Config()", "bootstrap", "startSOCKS", "dial", "read", "write", "close", "setDeadline",
			"trimMemory", "setDormant", "networkChanged", "statsJSON", "stop", "dataDir", "logger", "errorKind", "KindEOF",
			"phase", "percent", "ProgressListener.onProgress", "Logger lambda", "import Client")
	})
	t.Run("swift", func(t *testing.T) {
		c := checkSwift(t, parseObjCAPI(t, string(header)), readSources(t, "ios/Sample", ".swift"))
		c.require(t, "OnionliteConfig()", "OnionliteNewClient()", "OnionliteErrorKind()", "bootstrap", "startSOCKS", "dial",
			"read", "write", "close", "setDeadline", "trimMemory", "setDormant", "networkChanged", "statsJSON", "stop",
			"dataDir", "logger", "phase", "percent", "OnionliteKindEOF", "OnionliteProgressListener.onProgress",
			"OnionliteLogger.log")
	})
	t.Run("checkers", func(t *testing.T) {
		checkersCatchMistakes(t, parseJavaAPI(t, filepath.Join(out, "java/onionlite")), parseObjCAPI(t, string(header)))
	})
}

// checkersCatchMistakes feeds the checkers broken samples: each must be
// reported, and the real samples must not be.
func checkersCatchMistakes(t *testing.T, japi *javaAPI, oapi *objcAPI) {
	kotlin := map[string]string{
		"unknown method":  "val c = Client(cfg)\nc.connect(\"x\", 1)",
		"wrong arity":     "val c = Client(cfg)\nc.dial(\"x\")",
		"unknown setter":  "val cfg = Config()\ncfg.dataDirectory = \"x\"",
		"unknown getter":  "fun f(p: Progress) { p.stage }",
		"unknown const":   "val k = Onionlite.KindNope",
		"unknown import":  "import onionlite.Tunnel\n",
		"ctor arity":      "val c = Client()",
		"lambda arity":    "val l = Logger { message -> }",
		"override name":   "val l = object : ProgressListener {\n override fun onUpdate(p: Progress) {}\n}",
		"override count":  "val l = object : ProgressListener {\n}",
		"stream method":   "val s: Stream = c.dial(h, 1)\ns.readAll()",
		"static function": "Onionlite.errorKinds(\"x\")",
	}
	for name, src := range kotlin {
		var f findings
		checkKotlin(&f, japi, map[string]string{"Bad.kt": src})
		if len(f.msgs) == 0 {
			t.Errorf("kotlin %q: not reported", name)
		}
		t.Logf("kotlin %s: %q", name, f.msgs)
	}
	swift := map[string]string{
		"unknown function":  "let c = OnionliteMakeClient(cfg, &err)",
		"wrong label":       "let c = OnionliteNewClient(cfg, &err)\nlet s = try c.dial(h, to: 1)",
		"missing try":       "let c = OnionliteNewClient(cfg, &err)\nc.bootstrap(nil)",
		"needless try":      "let c = OnionliteNewClient(cfg, &err)\ntry c.networkChanged()",
		"try on startSOCKS": "let c = OnionliteNewClient(cfg, &err)\nlet a = try c.startSOCKS(\"x\")",
		"unknown property":  "let cfg = OnionliteConfig()\ncfg.dataDirectory = \"x\"",
		"protocol name":     "class L: NSObject, OnionliteProgressListener {}",
		"protocol method":   "class L: NSObject, OnionliteLoggerProtocol {\n func log(_ level: Int64, text: String?) throws {}\n}",
		"unknown const":     "let k = OnionliteKindNope",
		"stream labels":     "let c = OnionliteNewClient(cfg, &err)\nlet s = try c.dial(h, port: 1)\ntry s.write(d, n: &n)",
	}
	for name, src := range swift {
		var f findings
		checkSwift(&f, oapi, map[string]string{"Bad.swift": "import Onionlite\n" + src})
		if len(f.msgs) == 0 {
			t.Errorf("swift %q: not reported", name)
		}
		t.Logf("swift %s: %q", name, f.msgs)
	}
	// And the good samples report nothing to a recorder either.
	var f findings
	checkKotlin(&f, japi, readSources(t, "android/sample", ".kt"))
	checkSwift(&f, oapi, readSources(t, "ios/Sample", ".swift"))
	if len(f.msgs) != 0 {
		t.Errorf("the samples have findings: %q", f.msgs)
	}
}
