package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var chartColors = map[string]color.Color{
	sysInterlock:       color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	sysEtcdMutex:       color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	sysEtcdMutexEq:     color.RGBA{R: 0x55, G: 0xc8, B: 0x55, A: 0xff},
	sysEtcdMutexInproc: color.RGBA{R: 0x8c, G: 0xe0, B: 0x8c, A: 0xff},
	sysRedisLock:       color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

func chartLabel(sys string) string {
	switch sys {
	case sysInterlock:
		return "Interlock"
	case sysEtcdMutex:
		return "etcd Mutex, gRPC, default timing"
	case sysEtcdMutexEq:
		return "etcd Mutex, gRPC, equal timing"
	case sysEtcdMutexInproc:
		return "etcd Mutex, v3client, equal timing"
	case sysRedisLock:
		return "Redis lock"
	case sysRedisLock + ", appendfsync always":
		return "Redis lock, fsync always"
	}
	return sys
}

// writeCharts draws docs/benchmarks-locks.png: one panel per S2 figure,
// one bar per system, each labelled with its value.
func (r *report) writeCharts(dir string) error {
	if len(r.s2) == 0 {
		return nil
	}
	panels := []struct {
		title, unit string
		get         func(lockRow) rep
	}{
		{"Uncontended acquire+release, p50", "ms (lower is better)", func(x lockRow) rep { return x.uncP50 }},
		{"64 names in parallel", "pairs/s (higher is better)", func(x lockRow) rep { return x.parRate }},
		{fmt.Sprintf("One name, %d contenders", r.st.contenders), "hand-offs to another holder per second (higher is better)", func(x lockRow) rep { return x.conHandoffs }},
	}
	var plots []*plot.Plot
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if i == 0 {
			p.Title.Text = fmt.Sprintf("S2 locks, %s run %s, %d CPUs. %s", r.st.mode, r.started.UTC().Format("2006-01-02"), r.machine.nproc, pn.title)
		}
		p.X.Label.Text = pn.unit
		var names []string
		var labels []string
		var xys plotter.XYs
		for i, x := range r.s2 {
			v := pn.get(x).median()
			txt := num(v)
			names = append(names, chartLabel(x.sys))
			labels = append(labels, " "+txt)
			bar, err := plotter.NewBarChart(plotter.Values{v}, vg.Points(16))
			if err != nil {
				return err
			}
			bar.Horizontal = true
			bar.XMin = float64(i)
			bar.LineStyle.Width = 0
			c := chartColors[x.sys]
			if c == nil {
				c = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
			}
			bar.Color = c
			p.Add(bar)
			xys = append(xys, plotter.XY{X: v, Y: float64(i)})
		}
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return err
		}
		for i := range lab.TextStyle {
			lab.TextStyle[i].YAlign = draw.YCenter
		}
		p.Add(lab)
		p.NominalY(names...)
		p.X.Min = 0
		_, xmax, _, _ := plotter.XYRange(xys)
		p.X.Max = xmax * 1.45
		if p.X.Max == 0 {
			p.X.Max = 1
		}
		plots = append(plots, p)
	}
	const w, h = 9 * vg.Inch, 7.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 6, PadTop: vg.Millimeter * 4, PadBottom: vg.Millimeter * 4, PadLeft: vg.Millimeter * 4, PadRight: vg.Millimeter * 4}
	grid := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		grid[i] = []*plot.Plot{p}
	}
	canvases := plot.Align(grid, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	f, err := os.Create(filepath.Join(dir, "benchmarks-locks.png"))
	if err != nil {
		return err
	}
	defer f.Close()
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(f); err != nil {
		return err
	}
	return f.Close()
}
