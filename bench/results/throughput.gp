set terminal pngcairo size 1200,600 noenhanced
set output 'throughput.png'
set title 'records/s per workload (catch-up: reading the backlog); blocked rows are 0'
set style data histograms
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set ylabel 'records/s'
set grid ytics
set key top right
set xtics rotate by -20
plot 'throughput.dat' using 2:xtic(1) title 'runnel-sync', 'throughput.dat' using 3:xtic(1) title 'runnel-interval', 'throughput.dat' using 4:xtic(1) title 'redis-always', 'throughput.dat' using 5:xtic(1) title 'redis-everysec', 'throughput.dat' using 6:xtic(1) title 'nats-always', 'throughput.dat' using 7:xtic(1) title 'nats-default', 'throughput.dat' using 8:xtic(1) title 'kafka-always', 'throughput.dat' using 9:xtic(1) title 'kafka-default'
