package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"clusterchat/internal/testenv"
)

// waitTimeout bounds each wait for something to show in a page. Generous:
// race-built servers, PostgreSQL, Redis, nginx and Chromium share two cores;
// a passing test never waits for it.
const waitTimeout = 30 * time.Second

// chromiumPath finds Debian's chromium. Without it the browser tests skip,
// saying how to install it (make test does: scripts/deps).
func chromiumPath(t *testing.T) string {
	for _, c := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed: the browser tests need it; `make test` installs it (scripts/deps), or apt-get install chromium")
	return ""
}

// startBrowser starts a headless Chromium for the test with a fresh
// profile, everything that reaches out to the network off (this machine is
// offline), and no sandbox (tests run as root). It returns the browser's
// context; each user gets an isolated browser context of it (newUser).
// extra adds allocator options (flags) for one test.
func startBrowser(t *testing.T, extra ...chromedp.ExecAllocatorOption) context.Context {
	bin := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 800),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting chromium %s: %v", bin, err)
	}
	return bctx
}

// person is one user with their own browser storage (a browser context):
// their tabs share localStorage, other people's do not.
type person struct {
	t       *testing.T
	name    string
	pw      string
	id      int64
	ctx     context.Context // the browser context's first tab, kept blank
	dialogs *atomic.Int64   // alert/confirm dialogs opened in any of their tabs
}

func newPerson(t *testing.T, browser context.Context, name string) *person {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("new browser context: %v", err)
	}
	return &person{t: t, name: name, pw: "pw-" + name, ctx: ctx, dialogs: new(atomic.Int64)}
}

// tab is one open page of a person.
type tab struct {
	p      *person
	ctx    context.Context
	cancel context.CancelFunc
}

// open opens url in a new tab of p. Any alert() is counted (an injected
// script would show one) and dismissed.
func (p *person) open(url string) *tab {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	tb := &tab{p: p, ctx: ctx, cancel: cancel}
	p.t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		p.t.Fatalf("new tab: %v", err)
	}
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			p.t.Logf("%s: page exception: %s", p.name, exceptionText(ev.ExceptionDetails))
		}
	}()
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			p.dialogs.Add(1)
			go chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	tb.do(chromedp.Navigate(url))
	return tb
}

// close closes the tab, as a person closing the page.
func (tb *tab) close() { tb.cancel() }

func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.p.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		var state string
		tb.eval(`document.body ? document.body.innerText.slice(0, 2000) : ""`, &state)
		tb.p.t.Fatalf("%s: %v; the page shows:\n%s", tb.p.name, err, state)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into v.
func (tb *tab) eval(expr string, v any) {
	tb.p.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage](expr))
	if err != nil {
		tb.p.t.Fatalf("%s: eval %q: %v", tb.p.name, expr, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		tb.p.t.Fatalf("%s: eval %q = %s: %v", tb.p.name, expr, raw, err)
	}
}

// waitJS polls expr until it is truthy; what says what was awaited.
func (tb *tab) waitJS(what, expr string) {
	tb.p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		var ok bool
		tb.eval("!!("+expr+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var state string
			tb.eval(`document.body ? document.body.innerText.slice(0, 2000) : ""`, &state)
			tb.p.t.Fatalf("%s: timed out after %v waiting for %s; the page shows:\n%s", tb.p.name, waitTimeout, what, state)
		}
		time.Sleep(delay)
	}
}

// typeText focuses the element and types text as keystrokes (\r is Enter),
// after what it already holds.
func (tb *tab) typeText(sel, text string) {
	tb.p.t.Helper()
	tb.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// click clicks the element sel like a mouse would. The list re-renders as
// events arrive, so an element found a moment ago may be gone by the click:
// then it finds it again.
func (tb *tab) click(sel string) {
	tb.p.t.Helper()
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
		err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
		cancel()
		if err == nil {
			return
		}
		if attempt < 5 && strings.Contains(err.Error(), "Could not find node") {
			continue
		}
		tb.do(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))) // fails with the page's text
		return
	}
}

// register creates p's account through the page's form and waits for the
// chat view; it learns p's id from the page.
func (tb *tab) register() {
	tb.p.t.Helper()
	tb.click("#tab-register")
	tb.typeText("#reg-name", tb.p.name)
	tb.typeText("#reg-pw", tb.p.pw+"\r")
	tb.waitJS("the chat view after registering", `!document.getElementById('chat').hidden && document.getElementById('me-id').textContent`)
	var idText string
	tb.eval(`document.getElementById('me-id').textContent`, &idText)
	id, err := strconv.ParseInt(strings.TrimPrefix(idText, "id "), 10, 64)
	if err != nil {
		tb.p.t.Fatalf("%s: user id shown as %q", tb.p.name, idText)
	}
	tb.p.id = id
}

// action runs one of the side panel's forms (friend, create, join) and
// waits for it to succeed (the form closes).
func (tb *tab) action(name string, values ...string) {
	tb.p.t.Helper()
	tb.submitAction(name, values...)
	tb.waitJS("the "+name+" form to close", `document.getElementById('action-form').hidden`)
}

// submitAction opens a side panel form, fills it in and submits it.
func (tb *tab) submitAction(name string, values ...string) {
	tb.p.t.Helper()
	// A panel closing just before (the account panel, say) moves the
	// buttons while the click is on its way, and the click lands on
	// nothing: as a person would, click again until the form is open.
	for range 3 {
		tb.click(fmt.Sprintf(`[data-action=%q]`, name))
		tb.frames()
		var open bool
		tb.eval(`!document.getElementById('action-form').hidden`, &open)
		if open {
			break
		}
	}
	for i, v := range values {
		tb.typeText(fmt.Sprintf("#action-form input:nth-of-type(%d)", i+1), v)
	}
	tb.click(`#action-form button[type=submit]`)
}

// openConv clicks conversation conv in the list and waits for it to show.
func (tb *tab) openConv(conv string) {
	tb.p.t.Helper()
	sel := fmt.Sprintf(`#convs [data-conv=%q]`, conv)
	tb.waitJS("conversation "+conv+" in the list", fmt.Sprintf(`document.querySelector(%q)`, sel))
	// The list may reorder under the pointer as messages arrive (a person
	// would click again): retry until this conversation is the open one.
	open := fmt.Sprintf(`document.querySelector(%q).classList.contains('active') && !document.getElementById('pane-main').hidden`, sel)
	for range 3 {
		tb.click(sel)
		tb.frames()
		var ok bool
		tb.eval("!!("+open+")", &ok)
		if ok {
			return
		}
	}
	tb.waitJS("conversation "+conv+" open", open)
}

// send types text into the composer and presses Enter, then waits until it
// is acknowledged (no longer pending).
func (tb *tab) send(text string) {
	tb.p.t.Helper()
	tb.typeText("#text", text+"\r")
	tb.waitJS(fmt.Sprintf("%q sent", text), `!document.querySelector('#messages .msg.pending, #messages .msg.failed')`)
}

// texts returns the acknowledged messages shown in the open conversation.
func (tb *tab) texts() []string {
	tb.p.t.Helper()
	var out []string
	tb.eval(`[...document.querySelectorAll('#messages .msg[data-seq] .text')].map(e => e.textContent)`, &out)
	return out
}

// waitTexts waits until the open conversation shows exactly want, in order.
func (tb *tab) waitTexts(want ...string) {
	tb.p.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		got := tb.texts()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			tb.p.t.Fatalf("%s: timed out after %v: messages %q, want %q", tb.p.name, waitTimeout, got, want)
		}
		time.Sleep(delay)
	}
}

// frames waits two animation frames: what was just done is laid out and
// the store's render (one per frame) has run.
func (tb *tab) frames() {
	tb.p.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)); err != nil {
		tb.p.t.Fatalf("%s: waiting for a frame: %v", tb.p.name, err)
	}
}

// screenshot saves a PNG of the page at width x height into the test's
// artifacts folder (SCREENSHOT_DIR, or a temp dir that is logged), and into
// docs/ when UPDATE_SCREENSHOT=1 and docName is set.
func (tb *tab) screenshot(name string, width, height int64, docName string) string {
	tb.p.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, waitTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height)); err != nil {
		tb.p.t.Fatalf("viewport: %v", err)
	}
	tb.frames()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.p.t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		dir = screenshotDir(tb.p.t)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.p.t.Fatalf("screenshot: %v", err)
	}
	tb.p.t.Logf("screenshot %s", path)
	if docName != "" && os.Getenv("UPDATE_SCREENSHOT") == "1" {
		doc := filepath.Join(testenv.ModuleRoot(tb.p.t), "docs", docName)
		if err := os.WriteFile(doc, png, 0o644); err != nil {
			tb.p.t.Fatalf("screenshot: %v", err)
		}
	}
	return path
}

var shots atomic.Pointer[string]

func screenshotDir(t *testing.T) string {
	if d := shots.Load(); d != nil {
		return *d
	}
	d, err := os.MkdirTemp("", "clusterchat-screenshots-")
	if err != nil {
		t.Fatalf("screenshot dir: %v", err)
	}
	shots.Store(&d)
	return d
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return fmt.Sprintf("%s (line %d)", d.Text, d.LineNumber)
}

// chatBothWays has a ask b's user for friendship, then a sends first and b
// answers; each waits to see both messages in their conversation.
func chatBothWays(a, b *tab, first, reply string) {
	a.p.t.Helper()
	a.action("friend", strconv.FormatInt(b.p.id, 10))
	a.send(first)
	b.openConv(direct(a.p.id, b.p.id))
	b.waitTexts(first)
	b.send(reply)
	a.waitTexts(first, reply)
}
