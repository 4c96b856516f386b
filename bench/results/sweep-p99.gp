set terminal pngcairo size 1000,600 noenhanced
set output 'sweep-p99.png'
set title 'p99 latency at a quarter of each shard count''s maximum (sync)'
set logscale x 2
set logscale y
set grid
set xtics ('1' 1, '4' 4, '16' 16, '64' 64, '256' 256)
set xrange [0.714286:358.4]
set xlabel 'shards'
set ylabel 'milliseconds'
set key top left
set arrow from graph 0, first 5 to graph 1, first 5 nohead dt 3
plot 'sweep-q25-runnel-sync.dat' using 1:($2/1000) with linespoints lw 2 title 'runnel-sync e2e p99', 'sweep-q25-runnel-sync.dat' using 1:($3/1000) with linespoints dt 2 title 'runnel-sync publish p99'
