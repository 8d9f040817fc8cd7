set terminal pngcairo size 1500,720 font ",11" noenhanced
set output 'bench/results/2026-12-06-debian12-2cpu-epyc-melloc-s31/replay/ratio_time.png'
set title "Wall time relative to melloc (median of 5 runs)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [0.632082:2.1366]
set ytics (0.125, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 4, 8, 16, 32, 64)
set grid ytics
set xtics rotate by 45 right nomirror
set key top left horizontal
set ylabel "ratio to melloc (log scale; >1: melloc is better)"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
plot for [i=2:5] 'bench/results/2026-12-06-debian12-2cpu-epyc-melloc-s31/replay/ratio_time.dat' using i:xtic(1) title columnheader(i)
