set terminal pngcairo size 1000,600 noenhanced
set output 'latency-b-rate-25.png'
set title 'end-to-end latency from the intended send time, b-rate-25 (148622 records/s)'
set logscale x
set logscale y
set grid
set xlabel 'percentile'
set ylabel 'microseconds'
set key top left
set xtics ('50' 2, '90' 10, '99' 100, '99.9' 1000, '99.99' 10000)
plot 'latency-b-rate-25-runnel-sync.dat' using (1/(1-$1/100)):2 with linespoints title 'runnel-sync', 'latency-b-rate-25-runnel-interval.dat' using (1/(1-$1/100)):2 with linespoints title 'runnel-interval', 'latency-b-rate-25-redis-always.dat' using (1/(1-$1/100)):2 with linespoints title 'redis-always', 'latency-b-rate-25-redis-everysec.dat' using (1/(1-$1/100)):2 with linespoints title 'redis-everysec', 'latency-b-rate-25-nats-default.dat' using (1/(1-$1/100)):2 with linespoints title 'nats-default', 'latency-b-rate-25-kafka-always.dat' using (1/(1-$1/100)):2 with linespoints title 'kafka-always', 'latency-b-rate-25-kafka-default.dat' using (1/(1-$1/100)):2 with linespoints title 'kafka-default'
