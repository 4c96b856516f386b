set terminal pngcairo size 1000,600 noenhanced
set output 'sweep-ratio.png'
set title 'maximum throughput / raw write+fdatasync loop of the same row'
set logscale x 2
set grid
set xtics ('1' 1, '4' 4, '16' 16, '64' 64, '256' 256)
set xrange [0.714286:358.4]
set yrange [0:*]
set xlabel 'shards'
set ylabel 'x raw'
set key top right
set arrow from graph 0, first 0.8 to graph 1, first 0.8 nohead dt 3
plot 'sweep-max-runnel-sync.dat' using 1:2 with linespoints lw 2 title 'runnel-sync'
