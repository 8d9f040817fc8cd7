set terminal pngcairo size 1040,400 font ',10' noenhanced
set output 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.png'
set multiplot layout 1,2 title 'Per-thread throughput, 16-CPU machine, melloc 5298abf (median of 3)'
set logscale x 2
set xlabel 'threads'
set ylabel 'M ops/s per thread'
set key outside bottom center horizontal
set grid
set yrange [0:*]
set xrange [0.833333:19.2]
set title 'mixed'
plot 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 0 using 1:2 with linespoints lw 2 title 'melloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 0 using 1:3 with linespoints lw 2 title 'glibc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 0 using 1:4 with linespoints lw 2 title 'jemalloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 0 using 1:5 with linespoints lw 2 title 'tcmalloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 0 using 1:6 with linespoints lw 2 title 'mimalloc'
set xrange [0.833333:19.2]
set title 'larson'
plot 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 1 using 1:2 with linespoints lw 2 title 'melloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 1 using 1:3 with linespoints lw 2 title 'glibc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 1 using 1:4 with linespoints lw 2 title 'jemalloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 1 using 1:5 with linespoints lw 2 title 'tcmalloc', 'bench/results/2026-12-04-device-16cpu-melloc-s19/scaling.dat' index 1 using 1:6 with linespoints lw 2 title 'mimalloc'
unset multiplot
