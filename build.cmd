@echo off
rem Copra's one entry point on Windows: the twin of build.sh, verb for verb and variable for variable
rem (COPRA_TEST_RESULTS). Verbs: build, test, run, copra, bench, fuzz, aot. Arguments after the verb are passed
rem through untouched: they are cut from %* as typed, never re-collected with %1 (which would split "1,2,4" at the commas).
setlocal
cd /d "%~dp0"
set DOTNET_CLI_TELEMETRY_OPTOUT=1
set DOTNET_NOLOGO=1
set DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
set "VERB=%~1"
if "%VERB%"=="" set "VERB=build"
set "ARGS="
if not "%~1"=="" (
  set "ARGS=%*"
  call set "ARGS=%%ARGS:*%1=%%"
)
if not defined COPRA_TEST_RESULTS set "COPRA_TEST_RESULTS=artifacts\test-results"
if "%VERB%"=="build" ( dotnet build Copra.slnx -c Release %ARGS% & goto end )
if "%VERB%"=="test" (
  dotnet build Copra.slnx -c Release || goto end
  dotnet test Copra.slnx -c Release --no-build --logger trx --results-directory "%COPRA_TEST_RESULTS%" %ARGS%
  goto end
)
if "%VERB%"=="run" ( dotnet run --project kernel -c Release -- run %ARGS% & goto end )
if "%VERB%"=="copra" ( dotnet run --project kernel -c Release -- %ARGS% & goto end )
if "%VERB%"=="bench" ( dotnet run --project bench -c Release -- %ARGS% & goto end )
if "%VERB%"=="fuzz" ( dotnet run --project fuzz -c Release -- %ARGS% & goto end )
if "%VERB%"=="mutate" goto mutate
if "%VERB%"=="aot" (
  if exist artifacts\aot rmdir /s /q artifacts\aot
  dotnet publish kernel -c Release -p:CopraAot=true -o artifacts\aot %ARGS% || goto end
  del /q artifacts\aot\*.pdb artifacts\aot\*.dbg 2>nul
  echo native copra: artifacts\aot\copra.exe
  goto end
)
echo usage: build.cmd build^|test^|run^|copra^|bench^|fuzz^|aot^|mutate [args...] 1>&2
exit /b 2
:mutate
rem Mutation testing (Stryker.NET, local tool pinned in .config\dotnet-tools.json); one config per area in stryker\.
rem ARGS holds what followed the verb (the collect loop above consumed %1..%n).
set AREA=cold
set OPT=
set VAL=
for /f "tokens=1,2" %%a in ("%ARGS%") do ( set OPT=%%a& set VAL=%%b )
if /i "%OPT%"=="--project" set AREA=%VAL%
if not "%OPT%"=="" if /i not "%OPT%"=="--project" ( echo mutate: unknown option %OPT% 1>&2 & exit /b 2 )
if not "%AREA%"=="cold" if not "%AREA%"=="decode" if not "%AREA%"=="gate" if not "%AREA%"=="pipeline" ( echo mutate: unknown project '%AREA%' ^(cold^|decode^|gate^|pipeline^) 1>&2 & exit /b 2 )
dotnet tool restore >nul || exit /b 1
if not exist artifacts\mutation\%AREA% mkdir artifacts\mutation\%AREA%
rem Stryker runs in the area's test project folder (cold and decode have their own small test projects).
set DIR=tests
if "%AREA%"=="cold" set DIR=tests\Cold
if "%AREA%"=="decode" set DIR=tests\Decode
pushd %DIR%
dotnet tool run dotnet-stryker -- --config-file "%~dp0stryker\%AREA%.json" --output "%~dp0artifacts\mutation\%AREA%" --skip-version-check
set RC=%ERRORLEVEL%
popd
exit /b %RC%
:end
exit /b %ERRORLEVEL%
