package Demo;

# Runs demo/run (the thing `make demo` runs) for a test, on the test's
# port and in its own directory, and looks at what it serves and at what
# it leaves behind; plus the picture checks the browser test makes.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use File::Temp ();
use IO::Socket::INET;
use JSON::PP;
use LWP::UserAgent;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(poll root artifacts rgb bars changed luma_stddev);

my $root = abs_path(dirname(__FILE__) . '/../../..');

sub root { $root }

# screenshots and logs stay here after the test
sub artifacts {
    my $dir = "$root/build/t-browser";
    make_path($dir);
    return $dir;
}


# poll(SECONDS, CODE): CODE's first true result, or undef at the deadline

sub poll {
    my ($seconds, $code) = @_;
    my $deadline = time + $seconds;

    for (;;) {
        my $r = $code->();
        return $r if $r;
        return undef if time > $deadline;
        sleep 0.2;
    }
}


# Demo->start(name => N, port => P, env => {...}, pgrp => 1)
#
# Starts demo/run with the nginx, module and programs the test suite
# names (TEST_NGINX_BINARY, TEST_NGINX_LOAD_MODULES, TEST_NGINX_KAFKA_BIN);
# it starts a Kafka broker of its own (storage in build/t-browser/N/kafka)
# unless env names KAFKA_BROKERS.  Its output goes to
# build/t-browser/N-I.log, I counting the runs of this test.
# With pgrp, it runs in a process group of its own, as in a terminal.

my $runs = 0;
my %seen;

sub start {
    my ($class, %opt) = @_;

    # kept from run to run, as build/demo is by `make demo`; but a test
    # file starts on empty Kafka storage, and later runs of the same name
    # in it find the broker's data of the earlier ones
    my $dir = artifacts() . "/$opt{name}";
    remove_tree("$dir/kafka") unless $seen{$opt{name}}++;
    make_path($dir);

    my $self = bless {
        %opt,
        dir => $dir,
        log => artifacts() . "/$opt{name}-" . ++$runs . '.log',
        url => undef,
    }, $class;

    my %env = (
        DEMO_PORT => $opt{port},
        DEMO_DIR => $dir,
        %{ $opt{env} || {} },
    );
    $env{DEMO_NGINX} = $ENV{TEST_NGINX_BINARY} if $ENV{TEST_NGINX_BINARY};
    $env{DEMO_MODULE} = $ENV{TEST_NGINX_LOAD_MODULES}
        if $ENV{TEST_NGINX_LOAD_MODULES};
    $env{DEMO_BIN} = $ENV{TEST_NGINX_KAFKA_BIN}
        if $ENV{TEST_NGINX_KAFKA_BIN};

    # a log of an earlier run must not answer wait_url
    unlink $self->{log};

    my $pid = fork // die "fork: $!";

    if ($pid == 0) {
        setpgrp(0, 0) if $opt{pgrp};
        delete $ENV{KAFKA_BROKERS};
        @ENV{keys %env} = values %env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $self->{log} or die "$self->{log}: $!";
        open STDERR, '>&', \*STDOUT;
        exec "$root/demo/run";
        die "exec demo/run: $!";
    }

    $self->{pid} = $pid;
    return $self;
}


sub output {
    my ($self) = @_;
    open my $f, '<', $self->{log} or return '';
    local $/;
    return scalar <$f>;
}


# the exit status once demo/run has exited (like $? >> 8, or 128 + signal)

sub exited {
    my ($self) = @_;

    return $self->{status} if defined $self->{status};

    if (waitpid($self->{pid}, WNOHANG) == $self->{pid}) {
        $self->{status} = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    }

    return $self->{status};
}


# wait_url(SECONDS): the URL demo/run prints once it runs, or undef

sub wait_url {
    my ($self, $seconds) = @_;

    return poll($seconds, sub {
        return $self->{url} = $1
            if $self->output =~ m{Open (http://\S+) in a browser};
        return defined $self->exited ? -1 : 0;
    }) // undef;
}


# wait_exit(SECONDS): the exit status, or undef if still running

sub wait_exit {
    my ($self, $seconds) = @_;
    poll($seconds, sub { defined $self->exited });
    return $self->exited;
}


# stop(SIGNAL): signal demo/run (or its whole process group), wait

sub stop {
    my ($self, $signal) = @_;

    return $self->{status} if defined $self->exited;

    kill $signal => $self->{pgrp} ? -$self->{pid} : $self->{pid};
    return $self->wait_exit(30);
}


sub url { $_[0]{url} }

sub get {
    my ($self, $path) = @_;
    return LWP::UserAgent->new(timeout => 10)->get($self->{url} . $path);
}

sub status {
    my ($self) = @_;
    my $res = $self->get('status');
    return $res->is_success
           ? eval { decode_json($res->decoded_content) } : undef;
}

# the status's entry for a topic (all its partitions), or undef
sub stream_status {
    my ($self, $topic) = @_;
    my $s = $self->status or return undef;
    my ($entry) = grep { $_->{topic} eq $topic } @{ $s->{streams} };
    return $entry;
}

# the names of what demo/run started (DEMO_DIR/pids): broker, nginx, ...
sub started {
    my ($self) = @_;
    open my $f, '<', "$self->{dir}/pids" or return ();
    return map { (split)[0] } <$f>;
}

sub worker_pids {
    my ($self) = @_;
    my $s = $self->status or return ();
    return map { $_->{pid} } @{ $s->{workers} };
}

sub reload {
    my ($self) = @_;
    my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    return system($nginx, '-p', "$self->{dir}/", '-c', 'nginx.conf',
                  '-s', 'reload') == 0;
}


# parts(PATH, N, SECONDS): reads a multipart stream until N parts came;
# returns the number of parts seen and their content types

sub parts {
    my ($self, $path, $want, $seconds) = @_;

    my ($host, $port) = $self->{url} =~ m{^http://([^:/]+):(\d+)/};
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Timeout => 5)
        or return 0;

    print $s "GET /$path HTTP/1.1\r\nHost: $host\r\n\r\n";

    my ($buf, $n, %types) = ('', 0);
    my $deadline = time + $seconds;

    while ($n < $want && time < $deadline) {
        my $rin = '';
        vec($rin, fileno $s, 1) = 1;
        next unless select($rin, undef, undef, 0.5);
        last unless sysread $s, $buf, 65536, length $buf;

        while ($buf =~ s/^.*?\r\nContent-Type: (image\/\w+)\r\n//s) {
            $types{$1}++;
            $n++;
        }
    }

    close $s;
    return ($n, \%types);
}


# What is still there of what demo/run started: processes it recorded
# (DEMO_DIR/pids) that are alive, processes whose command line names its
# directory (nginx's master), and a listener on its port.

sub leftovers {
    my ($self) = @_;
    my @left;

    if (open my $f, '<', "$self->{dir}/pids") {
        while (<$f>) {
            my ($name, $pid) = split;
            push @left, "$name (pid $pid)" if kill 0 => $pid;
        }
    }

    for my $cmdline (glob '/proc/[0-9]*/cmdline') {
        open my $f, '<', $cmdline or next;
        local $/;
        my $cmd = <$f> // next;
        $cmd =~ tr/\0/ /;
        my ($pid) = $cmdline =~ m{/proc/(\d+)/};
        push @left, "pid $pid: $cmd"
            if index($cmd, $self->{dir}) >= 0 && $pid != $$;
    }

    push @left, "a listener on port $self->{port}"
        if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                 PeerPort => $self->{port}, Timeout => 2);

    return @left;
}


sub DESTROY {
    my ($self) = @_;
    local ($?, $@);
    # a test that died half-way leaves nothing running either
    $self->stop('TERM') if $self->{pid} && !defined $self->exited;
}


# ---- pictures ----

# rgb(PNG/JPEG bytes [, [X, Y, W, H]]): the picture, or that rectangle of
# it, scaled to 640x360, as rgb24 bytes

sub rgb {
    my ($image, $crop) = @_;

    my $in = File::Temp->new(SUFFIX => '.img');
    print $in $image;
    close $in;

    my $filter = 'scale=640:360';
    $filter = sprintf('crop=%d:%d:%d:%d,', @$crop[2, 3, 0, 1]) . $filter
        if $crop;

    my $raw = qx{ffmpeg -nostdin -v error -i $in -vf $filter \\
                 -f rawvideo -pix_fmt rgb24 - 2>/dev/null};

    return length($raw) == 640 * 360 * 3 ? $raw : undef;
}


# bars(RGB): how well the picture matches camera 1's sample video
# (ffmpeg's testsrc2): six colour bars.  Each bar is sampled along three
# vertical lines clear of the clock and the label; moving parts cross
# some of them, so a bar scores its best line: the share of its samples
# that have the bar's colour.  Returns the worst bar's score: near 1 for
# the video, near 0 for a blank or any other picture.  testsrc2's grey
# box is wider than a bar and half as high as the picture: where it
# stands, a bar scores about 0.5 at best (callers ask for 0.4).

my @BARS = ([255, 0, 0], [0, 255, 0], [255, 255, 0],
            [0, 0, 255], [255, 0, 255], [0, 255, 255]);

sub bars {
    my ($rgb) = @_;
    my $worst = 1;

    return 0 unless defined $rgb;

    for my $i (0 .. $#BARS) {
        my $best = 0;

        for my $at (0.25, 0.5, 0.75) {
            my $x = int(640 * ($i + $at) / 6);
            my ($match, $n) = (0, 0);

            for (my $y = 50; $y <= 310; $y += 10) {
                my @p = unpack 'C3', substr($rgb, ($y * 640 + $x) * 3, 3);
                $n++;
                $match++
                    unless grep { abs($p[$_] - $BARS[$i][$_]) > 80 } 0 .. 2;
            }

            $best = $match / $n if $match / $n > $best;
        }

        $worst = $best if $best < $worst;
    }

    return $worst;
}


# changed(RGB, RGB): the share of pixels that differ visibly

sub changed {
    my ($one, $two) = @_;

    return 0 unless defined $one && defined $two
                    && length $one == length $two;

    my @p = unpack 'C*', $one;
    my @q = unpack 'C*', $two;
    my $n = 0;

    for (my $i = 0; $i < @p; $i += 3) {
        $n++ if abs($p[$i] - $q[$i]) + abs($p[$i + 1] - $q[$i + 1])
                + abs($p[$i + 2] - $q[$i + 2]) > 48;
    }

    return $n / (@p / 3);
}


# luma_stddev(RGB): 0 for a blank picture

sub luma_stddev {
    my ($rgb) = @_;
    my ($sum, $sq, $n) = (0, 0, 0);

    for (my $i = 0; $i < length $rgb; $i += 3 * 7) {
        my ($r, $g, $b) = unpack 'C3', substr($rgb, $i, 3);
        my $y = 0.299 * $r + 0.587 * $g + 0.114 * $b;
        $sum += $y;
        $sq += $y * $y;
        $n++;
    }

    return 0 unless $n;
    my $mean = $sum / $n;
    return sqrt($sq / $n - $mean * $mean);
}


1;
